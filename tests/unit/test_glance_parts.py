"""The small pieces of the admin pages: status tones, <time> elements, wrap points, the chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.services import statuses
from app.services.directory.headline import CoveragePoint
from app.web.coverage_chart import coverage_svg
from app.web.local_time import local_time
from app.web.text_breaks import breakable

T0 = datetime(2026, 12, 3, 18, 33, 7, tzinfo=UTC)


def test_every_status_has_a_tone_and_locked_is_not_enrolled():
    tones = {s: statuses.status_tone(s) for s in statuses.STATUSES}
    assert set(tones.values()) <= {"bad", "warn", "ok", "off"}
    assert tones[statuses.LOCKED] == "bad" and tones[statuses.ENROLLED] == "ok"
    assert tones[statuses.NO_MFA] == "bad" and tones[statuses.REVOKED] == "off"


def test_times_carry_utc_in_the_markup_and_say_so():
    html = str(local_time(T0))
    assert 'datetime="2026-12-03T18:33:07Z"' in html and 'data-local="datetime"' in html
    assert ">2026-12-03 18:33 UTC</time>" in html
    assert ">18:33 UTC<" in str(local_time(T0, "time"))
    assert ">2026-12-03<" in str(local_time(T0, "date"))
    assert "—" in str(local_time(None))
    naive = T0.replace(tzinfo=None)  # a naive time is taken as UTC
    assert 'datetime="2026-12-03T18:33:07Z"' in str(local_time(naive))


def test_wrap_points_go_after_punctuation_and_text_stays_escaped():
    arn = "arn:aws:iam::123456789012:mfa/alice"
    assert str(breakable(arn)) == "arn:<wbr>aws:<wbr>iam::<wbr>123456789012:<wbr>mfa/<wbr>alice"
    assert str(breakable("iam.create_user")) == "iam.<wbr>create_user"
    assert str(breakable("<b>x</b> & y")) == "&lt;b&gt;x&lt;/<wbr>b&gt; &amp; y"
    assert str(breakable("ends with a dot.")) == "ends with a dot."


def test_the_chart_needs_a_console_user_and_names_itself():
    assert str(coverage_svg([], days=90)) == ""
    assert str(coverage_svg([CoveragePoint(T0, 0, 0)], days=90)) == ""
    one = str(coverage_svg([CoveragePoint(T0, 4, 1)], days=90))
    assert 'role="img"' in one and "<title" in one and "1 refresh: from 25% on 2026-12-03" in one
    assert one.count('class="chart-dot"') == 1 and "chart-line" not in one
    points = [CoveragePoint(T0 + timedelta(days=d), 4, d) for d in range(5)]
    many = str(coverage_svg(points, days=90))
    assert "5 refreshes: from 0% on 2026-12-03 to 100% on 2026-12-07." in many
    assert many.count('class="chart-dot"') == 5 and 'class="chart-line"' in many
