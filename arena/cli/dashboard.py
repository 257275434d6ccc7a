"""``arena dashboard``: optuna-dashboard on a duel's storage, on this machine only by default.

The studies of every duel (``NAME/rNN/attacker|defender``), their trials with the payoff, the
papers' metrics and both gates, live while a duel runs. It is optuna-dashboard's own server
(``optuna_dashboard.run_server``) on the storage Arena opens, so the same URLs work as for
``arena duel --storage``; a storage that does not exist or cannot be opened is a one-line
error, and nothing is created.
"""

from __future__ import annotations

import argparse
import sys

from arena.cli.base import CLIError, Command

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class DashboardCommand(Command):
    name = "dashboard"
    help = "serve optuna-dashboard on a duel storage: every study, trial, payoff and gate"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--storage",
            default=None,
            help="Optuna storage URL a duel wrote to (default sqlite:///runs/arena.db)",
        )
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 shows "
            "the studies to anyone who can reach it)",
        )
        parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")

    def run(self, args: argparse.Namespace) -> int:
        from arena.duels.run import absolute_storage
        from studies.storage import DEFAULT_STORAGE, open_storage, redact

        if not 0 < args.port < 65536:
            raise CLIError(f"--port {args.port} is not a TCP port; give one in 1-65535")
        url = absolute_storage(args.storage or DEFAULT_STORAGE)
        storage = open_storage(url, create=False)
        try:
            studies = storage.get_all_studies()
        except Exception as exc:  # noqa: BLE001 - any failure to read it is the same to a user
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CLIError(f"cannot read the studies in {redact(url)} ({first})") from None
        duels = {str(s.user_attrs["duel"]) for s in studies if "duel" in s.user_attrs}
        check_port(args.host, args.port)  # before saying where it listens
        where = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"optuna-dashboard on {redact(url)}: {len(studies)} studies of {len(duels)} "
            f"duel(s), at http://{where}:{args.port}/dashboard/ (Ctrl-C stops)",
            flush=True,
        )
        if args.host not in LOCAL_HOSTS:
            print(
                f"arena dashboard: listening on {args.host}: anyone who can reach this port can "
                "read every study and edit its notes",
                file=sys.stderr,
                flush=True,
            )
        from optuna_dashboard import run_server

        try:
            run_server(storage, host=args.host, port=args.port)
        except KeyboardInterrupt:
            return 0
        except OSError as exc:
            raise CLIError(
                f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); pick another "
                "--port or --host"
            ) from None
        return 0


def check_port(host: str, port: int) -> None:
    """Fail, in one line, unless a server can listen on ``host:port`` (bound and released at
    once: the dashboard binds it again right after)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise CLIError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or "
            "--host"
        ) from None
