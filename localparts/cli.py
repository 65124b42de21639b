"""`streamtrain-local`: install, start and stop the real parts on this machine.

    streamtrain-local install [kafka|registry]   # Kafka jars, the schema registry, Kubernetes,
                                                 # helm and Kueue binaries, cached (`kafka`:
                                                 # only the jars, what the demo needs;
                                                 # `registry`: only Apicurio Registry and a
                                                 # Java >= 21)
    streamtrain-local kafka up|down|status
    streamtrain-local registry up|down|status
    streamtrain-local controlplane up|down|status
"""

from __future__ import annotations

import argparse
import sys
import time

from localparts import controlplane, helm, kafka, kube_build, kueue_build, registry
from localparts.errors import LocalPartError


def _install_registry() -> None:
    started = time.monotonic()
    print(f"Apicurio Registry {registry.APICURIO_VERSION}: {registry.install()} "
          f"(Java: {registry.java()}, {time.monotonic() - started:.0f} s)", flush=True)


def _install(part: str) -> None:
    started = time.monotonic()
    if part == "registry":
        _install_registry()
        return
    print(f"Kafka {kafka.KAFKA_VERSION} jars: {kafka.install()}", flush=True)
    if part == "kafka":
        return
    _install_registry()
    compat = kafka.COMPAT_KAFKA_VERSION
    print(f"Kafka {compat} jars (tensorflow-io tests): {kafka.install(compat)}", flush=True)
    print(f"Kubernetes {kube_build.KUBERNETES_VERSION} binaries (first build takes a while): ",
          end="", flush=True)
    print(kube_build.build())
    print(f"helm {helm.HELM_VERSION}: {helm.build()}")
    print(f"Kueue {kueue_build.KUEUE_VERSION} (the Kueue tests): ", end="", flush=True)
    print(kueue_build.build())
    print(f"installed in {time.monotonic() - started:.0f} s")


def _kafka(action: str) -> None:
    if action == "up":
        server = kafka.up()
        print(f"Kafka {kafka.KAFKA_VERSION} at {server.details['bootstrap_servers']}"
              f" (log: {server.log_path})")
    elif action == "down":
        print("stopped" if kafka.down() else "no local broker was running")
    else:
        running = kafka.running()
        print(running.details["bootstrap_servers"] if running else "not running")


def _registry(action: str) -> None:
    if action == "up":
        server = registry.up()
        print(f"Apicurio Registry {registry.APICURIO_VERSION} at {server.details['url']}"
              f" (log: {server.log_path})")
    elif action == "down":
        print("stopped" if registry.down() else "no local schema registry was running")
    else:
        running = registry.running()
        print(running.details["url"] if running else "not running")


def _controlplane(action: str) -> None:
    if action == "up":
        print(f"export KUBECONFIG={controlplane.up()}")
    elif action == "down":
        print("stopped" if controlplane.down() else "no local control plane was running")
    else:
        state = controlplane.state_file()
        print(state.read_text() if state.exists() else "not running")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `streamtrain-local`."""
    parser = argparse.ArgumentParser(prog="streamtrain-local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="fetch and build every local part (cached)")
    install.add_argument("part", nargs="?", choices=["all", "kafka", "registry"], default="all",
                         help="kafka: only the broker's jars; registry: only the schema registry "
                              "(default: all)")
    for name in ("kafka", "registry", "controlplane"):
        sub = commands.add_parser(name, help=f"start or stop the local {name}")
        sub.add_argument("action", choices=["up", "down", "status"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; a failure prints its cause (command, output tail) and exits 1."""
    arguments = build_parser().parse_args(argv)
    try:
        if arguments.command == "install":
            _install(arguments.part)
        elif arguments.command == "kafka":
            _kafka(arguments.action)
        elif arguments.command == "registry":
            _registry(arguments.action)
        else:
            _controlplane(arguments.action)
    except LocalPartError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
