"""``fastsac bench`` (filled in below)."""


def add_parser(sub) -> None:
    sub.add_parser("bench", help="run the benchmark suite")


def run(args) -> int:
    raise SystemExit("fastsac bench: not available yet")
