"""The supervisor's deadlines: known in advance, and `check` fires exactly at them."""

from media.supervision import Action, SupervisionOptions, Supervisor

OPTIONS = SupervisionOptions(silence_reprompt_s=8, max_reprompts=1, max_call_s=60, stuck_after_s=5)


def test_silence_after_the_agent_went_quiet_is_due_at_its_deadline() -> None:
    supervisor = Supervisor(OPTIONS, started_at=0.0)
    supervisor.agent_idle(2.0)
    assert supervisor.next_deadline() == 10.0
    assert supervisor.check(9.99) is None
    assert supervisor.check(10.0) is Action.REPROMPT
    assert supervisor.next_deadline() == 60.0  # only the time limit is left


def test_progress_reported_late_moves_the_watchdog_but_never_back() -> None:
    supervisor = Supervisor(OPTIONS, started_at=0.0)
    supervisor.agent_busy(1.0)
    supervisor.agent_busy(3.0)
    supervisor.agent_busy(2.0)  # an older report, read late
    assert supervisor.next_deadline() == 8.0
    assert supervisor.check(8.0) is Action.RESPONSE_STUCK
    supervisor.agent_busy(3.0)  # the same progress again does not re-arm it
    assert supervisor.next_deadline() == 60.0


def test_playback_that_stops_is_due_after_its_budget() -> None:
    supervisor = Supervisor(OPTIONS, started_at=0.0)
    supervisor.playback(1.0, outstanding_s=2.0)
    assert supervisor.next_deadline() == 8.0
    supervisor.playback(1.5, outstanding_s=0.0)  # all played
    assert supervisor.next_deadline() == 60.0


def test_an_ending_call_keeps_only_the_watchdog() -> None:
    supervisor = Supervisor(OPTIONS, started_at=0.0)
    supervisor.ending()
    assert supervisor.next_deadline() is None
    supervisor.turn_pending(4.0)
    assert supervisor.next_deadline() == 9.0


def test_a_held_answer_is_due_when_the_pause_has_lasted_and_not_when_the_call_ends() -> None:
    supervisor = Supervisor(OPTIONS, started_at=0.0)
    supervisor.answer_due(3.5)
    assert (supervisor.next_deadline(), supervisor.check(3.4)) == (3.5, None)
    assert supervisor.check(3.5) is Action.ANSWER_DUE
    assert supervisor.next_deadline() == 60.0, "it fires once"
    supervisor.answer_due(4.0)
    supervisor.answer_due(None)  # answered meanwhile
    assert supervisor.next_deadline() == 60.0
    supervisor.answer_due(5.0)
    supervisor.ending()
    assert supervisor.next_deadline() is None
