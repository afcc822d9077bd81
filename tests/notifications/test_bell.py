"""The bell: the unread count in the header, the inbox, mark one or all as read."""

from __future__ import annotations

import pytest
from django.urls import reverse

from platformadmin.notifications.inbox import inbox_unread_count
from platformadmin.notifications.models import InAppMessage
from tests.factories import (
    ProjectFactory,
    UserFactory,
    add_org_member,
    add_project_member,
    make_api_key,
)
from tests.notifications.test_views import deliver_in_app, make_channel, make_notification

pytestmark = pytest.mark.django_db

INBOX = "/notifications/"


@pytest.fixture
def bell(organization):
    return make_channel(organization, name="Console bell")


def test_the_header_shows_the_unread_count(client, owner, bell, project):
    client.force_login(owner)
    home = client.get(reverse("home")).content.decode()
    assert 'aria-label="Notifications: 0 unread"' in home
    assert 'id="bell-count"' not in home
    for _ in range(3):
        deliver_in_app(make_notification(bell, project=project), owner)
    home = client.get(reverse("home")).content.decode()
    assert 'aria-label="Notifications: 3 unread"' in home
    assert '<span class="bell-count" id="bell-count">3</span>' in home
    # The fragment htmx refreshes the badge with.
    fragment = client.get(reverse("notifications:bell")).content.decode()
    assert fragment.startswith('<a class="bell has-unread"') and ">3</span>" in fragment


def test_anonymous_pages_carry_no_bell(client):
    page = client.get(reverse("login")).content.decode()
    assert "bell" not in page


def test_the_inbox_lists_only_the_users_own_messages(client, owner, reader, bell, project):
    mine = make_notification(bell, project=project, title="Budget Production at 80 %")
    theirs = make_notification(bell, project=project, title="Reader's own reminder")
    deliver_in_app(mine, owner)
    deliver_in_app(theirs, reader)
    client.force_login(owner)
    page = client.get(INBOX)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Budget Production at 80 %" in html
    assert "Reader&#x27;s own reminder" not in html and "Reader's own reminder" not in html
    assert mine.body in html


def test_mark_one_as_read(client, owner, bell, project):
    first, second = (make_notification(bell, project=project) for _ in range(2))
    deliver_in_app(first, owner)
    deliver_in_app(second, owner)
    client.force_login(owner)
    response = client.post(
        reverse("notifications:inbox-read"),
        {"notification": str(first.public_id), "next": "/notifications/?page=1"},
    )
    assert response.status_code == 302 and response["Location"] == "/notifications/?page=1"
    assert InAppMessage.objects.get(notification=first).read_at is not None
    assert InAppMessage.objects.get(notification=second).read_at is None
    assert inbox_unread_count(user=owner) == 1
    # A second click changes nothing and still answers.
    read_at = InAppMessage.objects.get(notification=first).read_at
    assert (
        client.post(
            reverse("notifications:inbox-read"), {"notification": str(first.public_id)}
        ).status_code
        == 302
    )
    assert InAppMessage.objects.get(notification=first).read_at == read_at


def test_nobody_marks_another_users_message(client, owner, reader, bell):
    notification = make_notification(bell)
    deliver_in_app(notification, reader)
    client.force_login(owner)
    url = reverse("notifications:inbox-read")
    for value in (str(notification.public_id), "not-a-uuid", "", "1"):
        assert client.post(url, {"notification": value}).status_code == 404, value
    assert InAppMessage.objects.get(notification=notification).read_at is None
    assert client.get(url).status_code == 405


def test_next_must_stay_on_this_site(client, owner, bell):
    notification = make_notification(bell)
    deliver_in_app(notification, owner)
    client.force_login(owner)
    response = client.post(
        reverse("notifications:inbox-read"),
        {"notification": str(notification.public_id), "next": "https://evil.example/"},
    )
    assert response["Location"] == INBOX


def test_mark_all_as_read(client, owner, reader, bell):
    for _ in range(3):
        deliver_in_app(make_notification(bell), owner, reader)
    client.force_login(owner)
    response = client.post(reverse("notifications:inbox-read-all"), follow=True)
    assert "Marked 3 notifications as read." in response.content.decode()
    assert inbox_unread_count(user=owner) == 0
    assert inbox_unread_count(user=reader) == 3
    again = client.post(reverse("notifications:inbox-read-all"), follow=True)
    assert "Nothing to mark" in again.content.decode()
    assert client.get(reverse("notifications:inbox-read-all")).status_code == 405


def test_removed_members_stop_seeing_the_organizations_messages(client, bell, organization):
    former = UserFactory(username="former")
    membership = add_org_member(former, organization, "owner")
    deliver_in_app(make_notification(bell, title="Zeta-free alert"), former)
    assert inbox_unread_count(user=former) == 1
    membership.delete()
    assert inbox_unread_count(user=former) == 0
    client.force_login(former)
    assert "Zeta-free alert" not in client.get(INBOX).content.decode()


def test_messages_link_to_their_subject_only_when_the_user_may_open_it(
    client, owner, organization, project, bell
):
    api_key = make_api_key(project)
    notification = make_notification(
        bell,
        project=project,
        kind="key.rotation",
        subject=f"key:{api_key.public_id}",
        title="Rotate key soon",
    )
    deliver_in_app(notification, owner)
    key_url = reverse("keys:key-detail", kwargs={"key_id": api_key.public_id})
    client.force_login(owner)
    assert f'href="{key_url}"' in client.get(INBOX).content.decode()
    # A former owner of the project, still in the organization through another project:
    # the message stays, the link to a page they may not open does not.
    other_project = ProjectFactory(organization=organization, name="Research")
    former = UserFactory(username="former-project-owner")
    add_project_member(former, other_project, "member")
    deliver_in_app(notification, former)
    client.force_login(former)
    page = client.get(INBOX).content.decode()
    assert "Rotate key soon" in page
    assert key_url not in page


def test_an_unknown_subject_is_shown_without_a_link(client, owner, bell):
    deliver_in_app(make_notification(bell, subject="channel:test", title="Channel test"), owner)
    client.force_login(owner)
    html = client.get(INBOX).content.decode()
    assert "Channel test" in html


def test_the_inbox_has_a_constant_number_of_queries(
    client, owner, organization, project, bell, django_assert_num_queries
):
    client.force_login(owner)
    deliver_in_app(make_notification(bell, project=project), owner)
    deliver_in_app(make_notification(bell), owner)
    client.get(INBOX)
    # session, user, page count, page rows (notification, organization, project joined),
    # readable projects, organization roles, bell count.
    with django_assert_num_queries(7):
        client.get(INBOX)
    for i in range(30):
        deliver_in_app(make_notification(bell, project=project if i % 2 else None), owner)
    with django_assert_num_queries(7):
        client.get(INBOX)


def test_the_bells_poll_stops_when_the_session_ends(client):
    url = reverse("notifications:bell")
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 286
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
