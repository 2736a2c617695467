"""Members over the API: normalisation, uniqueness per partner and mode, lists, validation."""

from __future__ import annotations

import pytest

from tests.api.helpers import SignedClient, add_key, create_credentials, error_of


def create(api, **fields):
    response = api.post("/v1/members", json=fields)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_created_member_has_normalised_contacts_and_a_referral_code(api):
    member = create(api, email="  Ana.B@Example.COM ", phone="+44 (20) 7946-0958", name="  Ana   B ",
                    external_id="crm-1")
    assert member["id"].startswith("mem_")
    assert member["email"] == "ana.b@example.com"
    assert member["phone"] == "+442079460958"
    assert member["name"] == "Ana B"
    assert member["external_id"] == "crm-1"
    assert len(member["referral_code"]) == 8
    assert member["verified"] is False and member["verified_at"] is None
    assert member["mode"] == "test"
    assert member["created_at"].endswith("Z")
    assert api.get(f"/v1/members/{member['id']}").get_json() == member


@pytest.mark.sqlite_only  # input validation
@pytest.mark.parametrize("phone", ["0044 20 7946 0958", "+44.20.7946.0958", "+442079460958"])
def test_phone_spellings_become_one_e164_number(api, phone):
    assert create(api, phone=phone)["phone"] == "+442079460958"


@pytest.mark.sqlite_only  # input validation
@pytest.mark.parametrize("phone", ["020 7946 0958", "+44 20 79x6 0958", "+0442079460958", "+123", "+1234567890123456"])
def test_phone_without_country_code_or_digits_is_refused(api, phone):
    response = api.post("/v1/members", json={"phone": phone})
    assert response.status_code == 400
    assert error_of(response)["param"] == "phone"


@pytest.mark.sqlite_only  # input validation
@pytest.mark.parametrize("email", ["ana", "ana@", "@example.com", "ana@example", "a b@example.com"])
def test_malformed_email_is_refused(api, email):
    response = api.post("/v1/members", json={"email": email})
    assert response.status_code == 400
    assert error_of(response)["param"] == "email"


@pytest.mark.sqlite_only  # input validation
def test_member_needs_an_email_or_a_phone(api):
    response = api.post("/v1/members", json={"name": "Nobody", "email": None})
    assert response.status_code == 400
    assert error_of(response)["param"] == "email"


@pytest.mark.parametrize("field, first, second", [
    ("email", "dup@example.com", "DUP@example.com"),
    ("phone", "+442079460958", "0044 20 7946 0958"),
])
def test_contact_is_unique_per_partner_and_mode(app, client, api, creds, field, first, second):
    create(api, **{field: first})
    response = api.post("/v1/members", json={field: second})
    assert response.status_code == 409
    error = error_of(response)
    assert (error["code"], error["param"], error["type"]) == ("member_exists", field, "conflict")
    # The same contact is free in the other mode and for another partner.
    create(SignedClient(client, add_key(app, creds, mode="prod")), **{field: second})
    create(SignedClient(client, create_credentials(app, business="Other")), **{field: second})


def test_external_id_is_unique_per_partner_and_mode(api):
    create(api, email="x1@example.com", external_id="crm-7")
    response = api.post("/v1/members", json={"email": "x2@example.com", "external_id": "crm-7"})
    assert error_of(response)["param"] == "external_id"


def test_referral_codes_are_unique(api):
    codes = {create(api, email=f"r{i}@example.com")["referral_code"] for i in range(20)}
    assert len(codes) == 20


def test_list_is_newest_first_and_pages_with_starting_after(api):
    ids = [create(api, email=f"p{i}@example.com")["id"] for i in range(5)]
    first = api.get("/v1/members?limit=2").get_json()
    assert first["object"] == "list"
    assert [m["id"] for m in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    second = api.get(f"/v1/members?limit=2&starting_after={first['data'][-1]['id']}").get_json()
    assert [m["id"] for m in second["data"]] == ids[::-1][2:4]
    last = api.get(f"/v1/members?limit=2&starting_after={second['data'][-1]['id']}").get_json()
    assert [m["id"] for m in last["data"]] == ids[:1]
    assert last["has_more"] is False


def test_default_page_holds_20(api):
    for i in range(21):
        create(api, email=f"d{i}@example.com")
    page = api.get("/v1/members").get_json()
    assert len(page["data"]) == 20 and page["has_more"] is True


def test_list_filters_by_email_phone_and_external_id(api):
    ana = create(api, email="ana@example.com", phone="+442079460958", external_id="e-1")
    create(api, email="bob@example.com")
    for query in ("email=ANA%40example.com", "phone=%2B44%2020%207946%200958", "external_id=e-1"):
        assert [m["id"] for m in api.get(f"/v1/members?{query}").get_json()["data"]] == [ana["id"]]


def test_starting_after_another_partners_id_is_refused(app, client, api):
    theirs = create(SignedClient(client, create_credentials(app, business="Other")), email="t@example.com")
    response = api.get(f"/v1/members?starting_after={theirs['id']}")
    assert response.status_code == 400
    assert error_of(response)["param"] == "starting_after"


def test_validate_says_whether_a_member_exists(api):
    ana = create(api, email="ana@example.com", phone="+33612345678", external_id="crm-9")
    for query in ("email=Ana%40Example.com", "phone=%2B33%206%2012%2034%2056%2078", "external_id=crm-9"):
        assert api.get(f"/v1/members/validate?{query}").get_json() == {
            "object": "member_validation", "valid": True, "member_id": ana["id"], "verified": False}
    assert api.get("/v1/members/validate?email=nobody%40example.com").get_json() == {
        "object": "member_validation", "valid": False, "member_id": None, "verified": False}


@pytest.mark.sqlite_only  # input validation
def test_validate_needs_exactly_one_criterion(api):
    assert api.get("/v1/members/validate").status_code == 400
    response = api.get("/v1/members/validate?email=a%40b.co&external_id=x")
    assert response.status_code == 400


def test_update_changes_only_the_fields_sent(api):
    ana = create(api, email="ana@example.com", name="Ana")
    updated = api.patch(f"/v1/members/{ana['id']}", json={"phone": "+44 7700 900123"}).get_json()
    assert (updated["name"], updated["email"], updated["phone"]) == ("Ana", "ana@example.com", "+447700900123")
    cleared = api.patch(f"/v1/members/{ana['id']}", json={"email": None}).get_json()
    assert cleared["email"] is None and cleared["phone"] == "+447700900123"


@pytest.mark.sqlite_only  # input validation
def test_update_cannot_remove_the_last_contact(api):
    ana = create(api, email="ana@example.com")
    response = api.patch(f"/v1/members/{ana['id']}", json={"email": None})
    assert response.status_code == 400
    assert api.get(f"/v1/members/{ana['id']}").get_json()["email"] == "ana@example.com"


def test_update_to_another_members_email_is_member_exists(api):
    create(api, email="taken@example.com")
    bob = create(api, email="bob@example.com")
    response = api.patch(f"/v1/members/{bob['id']}", json={"email": "Taken@example.com"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "member_exists"


def test_unknown_member_is_404(api):
    response = api.get("/v1/members/mem_doesnotexist")
    assert response.status_code == 404
    assert error_of(response)["type"] == "not_found"
