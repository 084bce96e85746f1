"""streamer keys: a CurveZMQ server and client key pair for remote publishing."""

from __future__ import annotations

HELP = "make CurveZMQ key pairs (server and client) for encrypted, authenticated remote use"


def add_arguments(p) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="an empty folder for the keys")


def run(args) -> int:
    from streamer.security import make_keys

    k = make_keys(args.out)
    print(f"wrote CurveZMQ keys to {args.out}\n"
          f"  publisher (streamer run / simulate):  --curve-secret {k['server_secret']} "
          f"--curve-clients {k['allowed_clients']}\n"
          f"  subscriber (tap, ResultSubscriber, zmq source):  --server-key {k['server_public']} "
          f"--client-key {k['client_secret']}\n"
          f"keep the *.key_secret files private; copy only the public .key files")
    return 0


def add_client_key_arguments(p) -> None:
    """Flags of a command that connects to a publisher (tap)."""
    p.add_argument("--server-key", metavar="FILE", help="the publisher's public key (server.key): "
                   "CurveZMQ, with --client-key")
    p.add_argument("--client-key", metavar="FILE", help="this side's secret key (client.key_secret)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a plaintext connection to a non-loopback address (patient data!)")


def add_server_key_arguments(p) -> None:
    """Flags of a command that publishes (run, simulate)."""
    p.add_argument("--curve-secret", metavar="FILE", help="the publisher's secret key "
                   "(server.key_secret from streamer keys): CurveZMQ, with --curve-clients")
    p.add_argument("--curve-clients", metavar="DIR",
                   help="folder of client public keys allowed to subscribe (allowed_clients)")
    p.add_argument("--insecure", action="store_true",
                   help="with --allow-remote: publish in plaintext to the network (logs a warning)")
