"""The command-line pieces the commands share (streams/cli/options.py), through the
real ``routeq`` parser."""

from __future__ import annotations

import pytest

from streams.cli import build_parser


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(list(argv))


def test_numbers_parse_with_their_defaults() -> None:
    args = parse("run", "--checkpoint-every", "5")
    assert (args.checkpoint_every, args.checkpoint_ms) == (5, 2000)
    args = parse("worker", "--broker", "kafka://h:1", "--clock-ms", "0", "--heartbeat", "0.5")
    assert (args.batch, args.clock_ms, args.heartbeat, args.session_timeout) == (1000, 0, 0.5, 6.0)
    assert isinstance(args.batch, int) and isinstance(args.session_timeout, float)


@pytest.mark.parametrize("argv, says", [
    (("run", "--checkpoint-every", "0"), "argument --checkpoint-every: must be at least 1, got 0"),
    (("run", "--checkpoint-ms", "-5"), "argument --checkpoint-ms: must be at least 1, got -5"),
    (("run", "--checkpoint-every", "1e3"), "argument --checkpoint-every: expected an integer"),
    (("worker", "--broker", "k://h:1", "--batch", "0"), "argument --batch: must be at least 1"),
    (("worker", "--broker", "k://h:1", "--heartbeat", "soon"), "--heartbeat: expected a number"),
])
def test_a_number_out_of_range_stops_the_command_with_exit_2(
        argv: tuple[str, ...], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse(*argv)
    assert stop.value.code == 2
    assert says in capsys.readouterr().err


def test_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    for command, shown in (("run", ["(default 100000)", "(default 2000)",
                                    "default: the rules recorded in --state"]),
                           ("worker", ["(default 1000)", "(default 100)", "(default 6.0)",
                                       "rules file (default: built-in)"])):
        with pytest.raises(SystemExit):
            parse(command, "--help")
        text = " ".join(capsys.readouterr().out.split())
        for s in shown:
            assert s in text, (command, s)
