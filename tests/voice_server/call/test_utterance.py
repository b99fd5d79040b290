"""An utterance's state machine refuses moves it does not allow, loudly."""

import pytest

from voice_server.call.utterance import IllegalMove, Utterance, UtteranceState


def test_an_utterance_goes_from_planned_to_recorded() -> None:
    utterance = Utterance(number=1)
    for state in ("RENDERING", "PLAYING", "HEARD", "RECORDED"):
        utterance.move(UtteranceState[state])
    assert utterance.state is UtteranceState.RECORDED


def test_a_recorded_utterance_cannot_be_cut() -> None:
    utterance = Utterance(number=3)
    utterance.move(UtteranceState.RECORDED)
    with pytest.raises(IllegalMove, match="utterance 3: cannot go from RECORDED to CUT"):
        utterance.move(UtteranceState.CUT)
