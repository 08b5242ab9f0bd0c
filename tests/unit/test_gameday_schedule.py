"""Fire times as a Kubernetes CronJob computes them (robfig/cron v3 in the CronJob's timeZone),
blackouts read in the schedule's zone, and jitter every runner of a slot agrees on.

The expected times were worked out by hand from robfig/cron v3 spec.go ``Next`` and Go's
``time.Date``; the DST cases are the ones a reviewer asks about first."""

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.gameday.schedule import (
    blackout_at,
    fire_times,
    jitter_for,
    latest_slot,
    parse_cron,
    parse_timezone,
    slots_between,
)
from chaosmesh_py.gameday.suite import Blackout, Schedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str, zone: tzinfo = UTC) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def shown(times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times]


# --- grammar -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        # names, either case, in ranges
        ("30 10 * * tue", "2026-12-06T12:00", ["2026-12-08T10:30", "2026-12-15T10:30"]),
        ("0 9 * JAN-feb MON-Wed", "2026-12-31T12:00", ["2027-01-04T09:00", "2027-01-05T09:00"]),
        # "N/step" runs to the field's end; lists mix forms
        ("50/5 3,7-8 * * *", "2026-12-06T00:00", ["2026-12-06T03:50", "2026-12-06T03:55"]),
        ("0 9-17/4 * * *", "2026-12-06T10:00", ["2026-12-06T13:00", "2026-12-06T17:00"]),
        ("0 0 ? * SUN", "2026-12-06T00:00", ["2026-12-13T00:00", "2026-12-20T00:00"]),
        # day of month OR day of week when neither is '*' ...
        (
            "0 0 1,15 * MON",
            "2026-12-06T12:00",
            ["2026-12-07T00:00", "2026-12-14T00:00", "2026-12-15T00:00"],
        ),
        # ... AND when either starts with '*' (robfig keeps the star for a step of 1) ...
        (
            "0 0 */1 * MON",
            "2026-12-06T12:00",
            ["2026-12-07T00:00", "2026-12-14T00:00", "2026-12-21T00:00"],
        ),
        # ... but not for a larger step: */2 is days 1,3,5.. OR Monday
        (
            "0 0 */2 * MON",
            "2026-12-06T12:00",
            ["2026-12-07T00:00", "2026-12-09T00:00", "2026-12-11T00:00"],
        ),
        ("@yearly", "2026-12-06T12:00", ["2027-01-01T00:00", "2028-01-01T00:00"]),
        ("@annually", "2026-12-06T12:00", ["2027-01-01T00:00"]),
        ("@monthly", "2026-12-06T12:00", ["2027-01-01T00:00", "2027-02-01T00:00"]),
        ("@weekly", "2026-12-06T12:00", ["2026-12-13T00:00", "2026-12-20T00:00"]),
        ("@daily", "2026-12-06T12:00", ["2026-12-07T00:00"]),
        ("@midnight", "2026-12-06T12:00", ["2026-12-07T00:00"]),
        ("@hourly", "2026-12-06T12:00", ["2026-12-06T13:00", "2026-12-06T14:00"]),
        # the 29th of February waits for a leap year
        ("0 0 29 2 *", "2026-12-06T12:00", ["2028-02-29T00:00", "2032-02-29T00:00"]),
    ],
)
def test_fire_times_follow_robfig_grammar(cron, after, expected):
    schedule = Schedule(cron=cron, timezone="UTC")
    times = fire_times(schedule, at(after), len(expected))
    assert [t.strftime("%Y-%m-%dT%H:%M") for t in times] == expected
    assert all(t.utcoffset() == timedelta(0) for t in times)


@pytest.mark.parametrize(
    ("cron", "said"),
    [
        ("", "empty spec string"),
        ("* * * *", "expected exactly 5 fields, found 4"),
        ("0 0 * * * *", "expected exactly 5 fields, found 6"),
        ("60 * * * *", "minute field '60': end of range (60) above maximum (59)"),
        ("* 24 * * *", "hour field '24': end of range (24) above maximum (23)"),
        ("* * 0 * *", "day of month field '0': beginning of range (0) below minimum (1)"),
        ("* * * 13 *", "month field '13': end of range (13) above maximum (12)"),
        ("* * * * 7", "day of week field '7': end of range (7) above maximum (6)"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1)"),
        ("*/0 * * * *", "step of range should be a positive number"),
        ("1-2-3 * * * *", "too many hyphens"),
        ("*/2/3 * * * *", "too many slashes"),
        ("x * * * *", "failed to parse int from x"),
        ("1_0 * * * *", "failed to parse int from 1_0"),
        ("* * * * MONDAY", "failed to parse int from MONDAY"),
        ("* * * TUE *", "failed to parse int from TUE"),  # day names only in the day-of-week field
        (", * * * *", "no values"),
        ("5- * * * *", "minute field '5-': a number is missing"),
        ("*/ * * * *", "a number is missing"),
        ("@fortnightly", "unrecognized descriptor"),
        ("@every 1h", "@every counts from the CronJob's creation"),
        (
            "TZ=Europe/Berlin 0 9 * * *",
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ),
        ("CRON_TZ=UTC 0 9 * * *", "cannot use TZ or CRON_TZ in schedule"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
    ],
)
def test_schedules_kubernetes_refuses_are_refused_with_its_reason(cron, said):
    with pytest.raises(InvalidInput) as caught:
        parse_cron(cron, "schedule.cron")
    assert caught.value.field == "schedule.cron"
    assert said in caught.value.problem
    assert caught.value.fix  # every refusal says what to write instead


@pytest.mark.parametrize(
    ("zone", "said"),
    [
        ("", "is not a time zone name"),
        ("Local", "explicit time zone"),
        ("local", "explicit time zone"),
        ("Europe/Berln", "unknown time zone"),
        ("../etc/passwd", "unknown time zone"),
        ("Europe/-Berlin", "unknown time zone"),
        ("America/Argentina_Buenos_Aires_X", "unknown time zone"),  # a part over 14 characters
        ("Mars/Olympus", "unknown time zone"),
    ],
)
def test_time_zones_kubernetes_refuses_are_refused(zone, said):
    with pytest.raises(InvalidInput) as caught:
        parse_timezone(zone)
    assert caught.value.field == "schedule.timezone"
    assert said in caught.value.problem


def test_legacy_zone_names_kubernetes_tolerates_are_accepted():
    assert parse_timezone("Etc/GMT+5").key == "Etc/GMT+5"
    assert parse_timezone("UTC").key == "UTC"


# --- DST, as Kubernetes would do it ---------------------------------------------------------------


def test_a_slot_in_berlins_spring_gap_does_not_fire_that_day():
    # 2026-03-29 02:00 CET jumps to 03:00 CEST: there is no 02:30 and robfig skips the day.
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    times = fire_times(schedule, at("2026-03-27T12:00", BERLIN), 3)
    assert shown(times) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_a_slot_in_new_yorks_spring_gap_does_not_fire_that_day():
    schedule = Schedule(cron="30 2 * * *", timezone="America/New_York")
    times = fire_times(schedule, at("2026-03-06T12:00", NEW_YORK), 3)
    assert shown(times) == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]


def test_a_slot_in_new_yorks_autumn_repeat_fires_twice():
    # 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens twice and robfig's Next,
    # stepping real hours, meets it twice. Kubernetes starts two Jobs; the runner must cope.
    schedule = Schedule(cron="30 1 * * *", timezone="America/New_York")
    times = fire_times(schedule, at("2026-10-31T12:00", NEW_YORK), 3)
    assert shown(times) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-02T01:30:00-05:00",
    ]
    # two instants an hour apart, not one wall clock twice
    assert times[1] - times[0] == timedelta(hours=1)
    assert times[0] != times[1]
    assert [t.tzname() for t in times] == ["EDT", "EST", "EST"]


def test_a_slot_in_berlins_autumn_repeat_fires_twice():
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    times = fire_times(schedule, at("2026-10-24T12:00", BERLIN), 3)
    assert shown(times) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_an_hourly_schedule_across_a_spring_gap_has_no_phantom_hour():
    schedule = Schedule(cron="0 * * * *", timezone="Europe/Berlin")
    times = fire_times(schedule, at("2026-03-29T00:30", BERLIN), 3)
    assert shown(times) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]


def test_a_weekly_slot_keeps_its_wall_clock_across_the_change():
    schedule = Schedule(cron="30 10 * * TUE", timezone="Europe/Berlin")
    times = fire_times(schedule, at("2026-10-19T00:00", BERLIN), 2)
    assert shown(times) == ["2026-10-20T10:30:00+02:00", "2026-10-27T10:30:00+01:00"]
    assert [t.astimezone(UTC).hour for t in times] == [8, 9]


def test_midnight_that_does_not_exist_is_handled_as_robfig_does():
    # America/Santiago springs forward at 00:00 (2026-09-06 00:00 -> 01:00): no midnight.
    schedule = Schedule(cron="0 0 * * *", timezone="America/Santiago")
    zone = ZoneInfo("America/Santiago")
    times = fire_times(schedule, at("2026-09-04T12:00", zone), 3)
    assert shown(times) == [
        "2026-09-05T00:00:00-04:00",
        "2026-09-07T00:00:00-03:00",
        "2026-09-08T00:00:00-03:00",
    ]


# --- the shared interface's contracts -----------------------------------------------------------


def test_fire_times_are_strictly_after_and_in_the_schedules_zone():
    schedule = Schedule(cron="30 10 * * *", timezone="Europe/Berlin")
    slot = at("2026-12-08T10:30", BERLIN)
    assert fire_times(schedule, slot, 1)[0] == slot + timedelta(days=1)
    assert fire_times(schedule, slot - timedelta(microseconds=1), 1)[0] == slot
    # the same instant written in another zone gives the same answer, shown in Berlin's
    first = fire_times(schedule, slot.astimezone(NEW_YORK) - timedelta(seconds=1), 1)[0]
    assert first == slot
    assert (first.utcoffset(), first.tzname()) == (timedelta(hours=1), "CET")


def test_latest_slot_is_the_last_fire_time_at_or_before():
    schedule = Schedule(cron="30 10 * * TUE", timezone="Europe/Berlin")
    slot = at("2026-12-08T10:30", BERLIN)
    assert latest_slot(schedule, slot) == slot
    assert latest_slot(schedule, slot + timedelta(minutes=9)) == slot
    assert latest_slot(schedule, slot - timedelta(seconds=1)) == slot - timedelta(days=7)
    assert latest_slot(Schedule("* * * * *", "UTC"), at("2026-12-06T12:00:30")) == at(
        "2026-12-06T12:00"
    )
    assert latest_slot(Schedule("@yearly", "UTC"), at("2026-12-31T23:59")) == at("2026-01-01T00:00")


def test_latest_slot_is_none_when_nothing_fired_within_a_year():
    schedule = Schedule(cron="0 0 29 2 *", timezone="UTC")
    assert latest_slot(schedule, at("2027-03-01T00:00")) is None
    assert latest_slot(schedule, at("2028-03-01T00:00")) == at("2028-02-29T00:00")


def test_slots_between_excludes_start_and_includes_end():
    schedule = Schedule(cron="0 */6 * * *", timezone="UTC")
    slots = slots_between(schedule, at("2026-12-06T00:00"), at("2026-12-07T00:00"))
    assert shown(slots) == [
        "2026-12-06T06:00:00+00:00",
        "2026-12-06T12:00:00+00:00",
        "2026-12-06T18:00:00+00:00",
        "2026-12-07T00:00:00+00:00",
    ]
    assert slots_between(schedule, at("2026-12-06T01:00"), at("2026-12-06T05:59")) == []


def test_naive_datetimes_are_a_bug_not_a_guess():
    with pytest.raises(ValueError, match="timezone-aware"):
        fire_times(Schedule("@daily", "UTC"), datetime(2026, 12, 6), 1)


# --- blackouts --------------------------------------------------------------------------------


FREEZE = Blackout(reason="release freeze", dates=(date(2026, 12, 18), date(2027, 1, 4)))
WEEKENDS = Blackout(reason="weekend", weekdays=frozenset({5, 6}))
NIGHTS = Blackout(reason="night", hours=(time(22, 0), time(6, 0)))
FRIDAY_NIGHT = Blackout(reason="friday night", weekdays=frozenset({4}), hours=(time(22), time(6)))
OFFICE_LUNCH = Blackout(
    reason="lunch", weekdays=frozenset({0, 1, 2, 3, 4}), hours=(time(12), time(13))
)


@pytest.mark.parametrize(
    ("blackouts", "moment", "expected"),
    [
        ([FREEZE], "2026-12-18T00:00", "release freeze"),  # both ends included
        ([FREEZE], "2027-01-04T23:59", "release freeze"),
        ([FREEZE], "2026-12-17T23:59", None),
        ([FREEZE], "2027-01-05T00:00", None),
        ([WEEKENDS], "2026-12-12T10:00", "weekend"),  # a Saturday
        ([WEEKENDS], "2026-12-11T23:59", None),  # Friday
        ([NIGHTS], "2026-12-08T22:00", "night"),  # [from, to): from included ...
        ([NIGHTS], "2026-12-08T05:59", "night"),
        ([NIGHTS], "2026-12-08T06:00", None),  # ... to excluded
        ([NIGHTS], "2026-12-08T21:59", None),
        ([OFFICE_LUNCH], "2026-12-08T12:30", "lunch"),  # weekday AND hour
        ([OFFICE_LUNCH], "2026-12-12T12:30", None),  # Saturday lunch is not blacked out
        ([OFFICE_LUNCH], "2026-12-08T13:00", None),
        # a night that wraps belongs to the day it started
        ([FRIDAY_NIGHT], "2026-12-11T23:00", "friday night"),
        ([FRIDAY_NIGHT], "2026-12-12T05:00", "friday night"),  # Saturday small hours
        ([FRIDAY_NIGHT], "2026-12-11T05:00", None),  # Friday small hours: Thursday's night
        ([FRIDAY_NIGHT], "2026-12-12T23:00", None),
        ([WEEKENDS, FREEZE], "2026-12-19T10:00", "weekend"),  # the first that covers it
    ],
)
def test_blackouts_are_read_in_the_schedules_zone(blackouts, moment, expected):
    found = blackout_at(blackouts, "Europe/Berlin", at(moment, BERLIN))
    assert (found.reason if found else None) == expected
    # the same instant given in UTC is judged in Berlin
    again = blackout_at(blackouts, "Europe/Berlin", at(moment, BERLIN).astimezone(UTC))
    assert again == found


def test_a_blackout_hour_is_berlin_time_not_utc():
    found = blackout_at([NIGHTS], "Europe/Berlin", at("2026-12-08T21:30"))  # 22:30 in Berlin
    assert found == NIGHTS
    assert blackout_at([NIGHTS], "UTC", at("2026-12-08T21:30")) is None


# --- jitter -------------------------------------------------------------------------------------


def test_jitter_is_the_same_for_every_runner_of_a_slot():
    slot = at("2026-12-08T10:30", BERLIN)
    first = jitter_for("checkout-gameday", slot, 300)
    assert first == jitter_for("checkout-gameday", slot.astimezone(UTC), 300)
    assert 0 <= first < 300


def test_jitter_spreads_over_slots_and_names():
    slots = [at("2026-12-01T10:30") + timedelta(days=day) for day in range(200)]
    values = [jitter_for("checkout-gameday", slot, 60) for slot in slots]
    assert all(0 <= value < 60 for value in values)
    assert len({round(value, 6) for value in values}) == len(values)
    # spread over the whole range, not bunched: every fifth of it is used
    assert {int(value // 12) for value in values} == {0, 1, 2, 3, 4}
    assert jitter_for("other-gameday", slots[0], 60) != values[0]


def test_no_jitter_is_zero():
    assert jitter_for("checkout-gameday", at("2026-12-08T10:30"), 0) == 0.0


def test_latest_slot_and_slots_between_see_both_runs_of_a_repeated_hour():
    schedule = Schedule(cron="30 1 * * *", timezone="America/New_York")
    second = at("2026-11-01T06:45")  # 01:45 EST, after the second 01:30
    assert latest_slot(schedule, second).isoformat() == "2026-11-01T01:30:00-05:00"
    assert latest_slot(schedule, at("2026-11-01T06:15")).isoformat() == "2026-11-01T01:30:00-04:00"
    slots = slots_between(schedule, at("2026-10-31T12:00"), second)
    assert shown(slots) == ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"]
