"""The coordination sensor and its trigger.

Imported as ``sensors`` from a cloned project's plugins folder and as ``mpc_sensors`` from the
installed distribution (pyproject.toml maps the folder), so the modules import each other
relatively and the trigger's classpath is its module's own name. Other code gets the sensor class
through ``mpc_operators.sensor.coordination_sensor_class()``.
"""
