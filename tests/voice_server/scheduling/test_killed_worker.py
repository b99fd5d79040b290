"""A server killed while Twilio is placing one of its calls: another server takes the scheduled
call over once the lease has run out, and dials only the numbers never tried. Real processes:
`voice-server serve` children on the test database, the first one killed with SIGKILL."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from stores.phone_numbers import PhoneNumberStore
from stores.scheduled_calls import ScheduledCallCreate, ScheduledCallStore
from stores.secrets import SecretBox
from tests.voice_server.child_server import serve
from tests.voice_server.scheduling.line import Db, settled
from voice_server.seed import DEMO_USER, seed_demo
from voice_server.simulation.callees import Callee
from voice_server.simulation.twilio_standin import ApiFault, TwilioStandin, serve_twilio_standin

SLOW, NEXT = "+15550100301", "+15550100302"


async def test_a_killed_servers_call_is_taken_over_without_a_second_dial(
    database: Db, mongo_uri: str, tmp_path: Path
) -> None:
    key = SecretBox.generate_key()
    demo = await seed_demo(database, SecretBox(key))
    number = await PhoneNumberStore(database, SecretBox(key)).find_registered(demo.number)
    assert number is not None
    standin = TwilioStandin(default_callee=Callee(kind="busy", ring_s=0.1))
    standin.fail_number(SLOW, ApiFault(status=None, delay_s=5))  # placed, answered late
    async with serve_twilio_standin(standin):
        settings = {"twilio_api_base_url": standin.base_url, "scheduler_lease_seconds": "5"}
        first = await serve(mongo_uri, database.name, tmp_path, secrets_key=key, **settings)
        call = await ScheduledCallStore(database).create(
            ScheduledCallCreate(
                callType="normal",
                message="Your table is ready.",
                fromPhoneNumberId=number.id,
                toPhoneNumbers=[SLOW, NEXT],
                scheduledDateTime=datetime.now(UTC),
                userId=DEMO_USER,
            )
        )
        await standin.wait_for_creates(1)  # Twilio is placing the first call...
        first.process.send_signal(signal.SIGKILL)  # ...when its server dies
        await first.process.wait()
        second = await serve(mongo_uri, database.name, tmp_path, secrets_key=key, **settings)
        try:
            done = await settled(database, call.id, within_s=60)
        finally:
            second.process.terminate()
            await second.process.wait()

    assert Counter(c.get("To") for c in standin.creates) == {SLOW: 1, NEXT: 1}
    slow, following = done.destinations
    assert (slow.state, slow.outcome) == ("done", "failed")
    assert "not dialled again" in (slow.error or "")
    assert following.outcome == "busy"
    assert done.status == "failed"
