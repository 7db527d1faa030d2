"""The protocol shared by the operators, the sensor and the UI: spec, envelopes, store,
channel, programs, sharing, MPyC launcher and the stages of a run."""
