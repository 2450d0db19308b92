from django.urls import reverse


def test_it_serves_the_login_page(client, db):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_it_shows_the_dashboard_to_a_member(client, admin_membership):
    client.force_login(admin_membership.user)
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    assert admin_membership.organization.name.encode() in response.content
    assert b"No artifacts yet" in response.content


def test_it_sends_anonymous_users_to_login(client, db):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
