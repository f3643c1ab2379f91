from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from fastest.domain.cron import parse


def at(minute=0, hour=0, day=1, month=1, year=2026):
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


def test_every_fifteen_minutes():
    schedule = parse("*/15 * * * *")
    assert [m for m in range(60) if schedule.matches(at(minute=m))] == [0, 15, 30, 45]


def test_daily_at_three():
    schedule = parse("0 3 * * *")
    assert schedule.matches(at(hour=3)) and not schedule.matches(at(hour=3, minute=1)) and not schedule.matches(at(hour=4))


def test_ranges_lists_and_weekdays():
    schedule = parse("5,10 9-17/4 * * 1-5")  # weekdays at 9, 13, 17
    monday = at(minute=5, hour=13, day=23, month=11)  # 2026-11-23 is a Monday
    assert schedule.matches(monday)
    assert not schedule.matches(monday.replace(day=22))  # Sunday
    assert not schedule.matches(monday.replace(hour=14))


def test_day_of_month_or_weekday_when_both_are_restricted():
    schedule = parse("0 0 1 * 0")  # the 1st, or any Sunday
    assert schedule.matches(at(day=1, month=12)) and schedule.matches(at(day=22, month=11))
    assert not schedule.matches(at(day=23, month=11))


@pytest.mark.parametrize("bad", ["* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *"])
def test_invalid_expressions_are_refused(bad):
    with pytest.raises(ValueError):
        parse(bad)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_star_matches_every_minute(moment):
    assert parse("* * * * *").matches(moment)
