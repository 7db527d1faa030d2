"""The coordination bucket through the Amazon provider's ``aws`` connection.

``CoordinationHook`` is an ``S3Hook``: the connection ``mpc_coordination`` (type ``aws``) holds the
credentials (login/password, or none for the instance's role), ``role_arn`` with
``assume_role_method``/``assume_role_kwargs`` for role assumption (``service_config.sts.endpoint_url``
points STS elsewhere), ``endpoint_url``, ``region_name``, ``verify`` and ``config_kwargs`` (botocore
timeouts and retries). The project's defaults (``store.DEFAULT_CLIENT_CONFIG``: standard retries,
which the store bounds by time to ride out a brief outage, see ``mpc_federation.retries``) apply to
every option the connection leaves unset. One project extra: ``conditional_writes`` (``required``,
the default, or ``emulated``; see docs/stores.md).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

COORDINATION_CONN_ID = "mpc_coordination"
_LOADERS: dict[str, Any] = {}  # the first botocore session's data loader, for every later one


def _share_loader(botocore_session: Any) -> None:
    """Give ``botocore_session`` this process's one data loader, which caches what it parsed
    (``botocore.loaders.instance_cache``): the S3 model is then parsed once per process."""
    loader = _LOADERS.setdefault("data_loader", botocore_session.get_component("data_loader"))
    botocore_session.register_component("data_loader", loader)


class CoordinationHook(S3Hook):
    """The ``mpc_coordination`` connection as a ``CoordinationStore``.

    :param aws_conn_id: the ``aws`` connection of the coordination bucket.
    :param bucket: the bucket ``test_connection`` checks (else the connection extra ``bucket``).
    """

    default_conn_name = COORDINATION_CONN_ID
    hook_name = "MPC coordination bucket"

    def __init__(self, aws_conn_id: str = COORDINATION_CONN_ID, *, bucket: str | None = None, **kwargs: Any):
        super().__init__(aws_conn_id=aws_conn_id, **kwargs)
        self.bucket = bucket

    @property
    def config(self):
        """The connection's botocore config over the project's defaults."""
        from botocore.config import Config

        from mpc_federation.store import DEFAULT_CLIENT_CONFIG

        own = self.conn_config.botocore_config
        return Config(**DEFAULT_CLIENT_CONFIG).merge(own) if own is not None else Config(**DEFAULT_CLIENT_CONFIG)

    def get_session(self, region_name: str | None = None, deferrable: bool = False):
        """One boto3 session per hook and region (None: the connection's), sharing this process's
        parsed service models: a new botocore session parses the S3 model and its endpoint rules
        again from JSON (about 0.25 s of CPU), and a triggerer, or ``airflow dags test``, makes one
        hook per trigger or task."""
        sessions = self.__dict__.setdefault("_mpc_sessions", {})
        key = (region_name or self.region_name, deferrable)
        if key not in sessions:
            session = super().get_session(region_name=key[0], deferrable=deferrable)
            if not deferrable:  # an aiobotocore session keeps its own loader
                _share_loader(session._session)  # boto3 keeps the botocore session private
            sessions[key] = session
        return sessions[key]

    def _get_caller(self, target_function_name: str = "execute") -> str:
        """The caller the provider names in its user agent: this hook. The provider's own finds the
        operator with ``inspect.stack()``, about 0.15 s of CPU per client in a task's deep stack,
        paid on every rendezvous."""
        return type(self).__name__

    @property
    def conditional_writes(self) -> str:
        return str(self.conn_config.extra_config.get("conditional_writes", "required"))

    def quick_client(self) -> Any:
        """A client that fails at once (one attempt, short timeouts), for callers that poll anyway:
        from the same session as ``get_conn``'s (the region resolved alike), so no model is parsed again."""
        from botocore.config import Config

        from mpc_federation.store import QUICK_CLIENT_CONFIG

        return self.get_client_type(
            region_name=self.region_name, config=self.config.merge(Config(**QUICK_CLIENT_CONFIG))
        )

    def store(self, bucket: str, *, quick: bool = False, probe_key: str | None = None):
        """The ``CoordinationStore`` of ``bucket`` through this connection.

        :param quick: every call fails at once instead of riding out an outage (UI pages).
        :param probe_key: where the conditional-write probe writes; else the connection extra
            ``probe_key``, else ``store.PROBE_KEY`` at the bucket's root.
        """
        from mpc_federation.store import PROBE_KEY, CoordinationStore

        quick_client = self.quick_client() if quick else self.quick_client  # made on first use
        return CoordinationStore(
            quick_client if quick else self.get_conn(),
            bucket,
            quick_client=quick_client,
            conditional_writes=self.conditional_writes,
            probe_key=probe_key or self.conn_config.extra_config.get("probe_key") or PROBE_KEY,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Reach the bucket and check that it honours conditional writes (or that emulation is on)."""
        bucket = self.bucket or self.conn_config.extra_config.get("bucket")
        if not bucket:
            return False, ("no bucket to test: pass bucket= to CoordinationHook or set the connection extra 'bucket'")
        try:
            store = self.store(bucket, quick=True)
            store.check_reachable()
            honoured = store.probe_conditional_writes()
        except Exception as exc:  # noqa: BLE001 - the Test button shows the message
            return False, f"{type(exc).__name__} while testing the coordination bucket {bucket!r}: {exc}"
        if store.conditional_writes == "emulated":
            return True, (
                f"{store.name}: reachable; conditional writes emulated as the connection asks "
                f"(the store {'honours' if honoured else 'ignores'} them)"
            )
        if not honoured:
            return False, store.refusal()
        return True, f"{store.name}: reachable; conditional writes honoured"
