"""Arbitrary paths and query strings, signed by the SDK and checked by the real server: the
two canonicalisations must agree on whatever text a partner puts in an id or a filter."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loyalty_sdk import AuthenticationError, InvalidRequestError, LoyaltyError, NotFoundError

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(params=st.dictionaries(TEXT, st.one_of(TEXT, st.just("")), min_size=1, max_size=3))
def test_any_query_string_is_signed_as_the_server_reads_it(client, params):
    try:
        client.request("GET", "/v1/members", params=params)
    except AuthenticationError as error:  # invalid_signature would mean the two canonical strings differ
        pytest.fail(str(error))
    except LoyaltyError as error:
        assert error.status == 400, str(error)  # unknown or invalid filters are refused after the gate


@SETTINGS
@given(member_id=TEXT.filter(lambda t: t not in (".", "..")))
def test_any_path_segment_is_signed_as_the_server_reads_it(client, member_id):
    # A NUL cannot be stored (nor be part of an id): refused before the gate, naming the path.
    expected = InvalidRequestError if "\x00" in member_id else NotFoundError
    with pytest.raises(expected) as caught:  # not AuthenticationError: the signature matched
        client.members.get(member_id)
    assert caught.value.status == (400 if expected is InvalidRequestError else 404)
