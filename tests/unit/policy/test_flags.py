"""Response flags as Envoy prints them (envoyproxy.io "Access logging", %RESPONSE_FLAGS%)."""

from hypothesis import given
from hypothesis import strategies as st

from remora.policy.flags import ResponseFlag, join_flags


def test_no_flag_prints_dash() -> None:
    assert join_flags([]) == "-"
    assert join_flags([ResponseFlag.NONE]) == "-"


def test_one_flag_prints_its_short_code() -> None:
    assert join_flags([ResponseFlag.NR]) == "NR"
    assert join_flags([ResponseFlag.UAEX]) == "UAEX"


def test_several_flags_join_with_comma_in_envoy_table_order() -> None:
    # Envoy's ResponseFlagUtils::toShortString walks ALL_RESPONSE_STRINGS_FLAGS in order:
    # ... UH ... UF, UC ... DC, URX ...; the order requests set them in does not matter.
    assert join_flags([ResponseFlag.URX, ResponseFlag.UF]) == "UF,URX"
    assert join_flags([ResponseFlag.DC, ResponseFlag.UC, ResponseFlag.UH]) == "UH,UC,DC"


def test_short_codes_are_envoys() -> None:
    codes = {flag.value for flag in ResponseFlag}
    assert {"NR", "UH", "UF", "UO", "URX", "UT", "UC", "UR", "UPE", "LR", "DC", "DPE"} <= codes
    assert {"SI", "NC", "DI", "FI", "RL", "UAEX", "-"} <= codes
    assert ResponseFlag.NONE == "-"


@given(st.lists(st.sampled_from(list(ResponseFlag))))
def test_join_is_a_set_of_codes(flags: list[ResponseFlag]) -> None:
    text = join_flags(flags)
    expected = {f.value for f in flags} - {"-"}
    if not expected:
        assert text == "-"
    else:
        parts = text.split(",")
        assert len(parts) == len(expected)
        assert set(parts) == expected
        assert join_flags(reversed(flags)) == text
