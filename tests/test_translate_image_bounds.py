"""Images sent to Kiro are bounded: at most MAX_IMAGES, only from the last IMAGE_HISTORY_TURNS user turns, older
ones a text placeholder; more in the current message is a 400 (translate/image_bounds.py, and through the routes)."""
from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from ki2api.app import create_app
from ki2api.errors import InvalidRequest
from ki2api.settings import Settings
from ki2api.translate.history import Conversation, Turn, build_payload
from ki2api.translate.image_bounds import HISTORY_TURNS, MAX_IMAGES, ImageBounds, bound_images, placeholder
from tests.helpers.credentials import KEY

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


def image(n: int) -> dict:
    return {"format": "png", "source": {"bytes": f"image-{n}"}}


def names(turn: Turn) -> list[str]:
    return [i["source"]["bytes"] for i in turn.images]


def chat(images_per_user_turn: list[int]) -> list[Turn]:
    """User turns with these many images each (numbered in order), an assistant answer between them."""
    turns, n = [], 0
    for count in images_per_user_turn:
        if turns:
            turns.append(Turn("assistant", "seen"))
        turns.append(Turn("user", f"look {len(turns)}", images=[image(n + i) for i in range(count)]))
        n += count
    return turns


def test_the_defaults_are_the_settings_defaults():
    settings = Settings.from_env({})
    assert (settings.max_images, settings.image_history_turns) == (MAX_IMAGES, HISTORY_TURNS) == (20, 5)
    assert ImageBounds() == ImageBounds(settings.max_images, settings.image_history_turns)


def test_a_short_chat_keeps_every_image():
    turns = chat([1, 2, 1])
    assert bound_images(turns, ImageBounds()) == 0
    assert [names(t) for t in turns if t.role == "user"] == [["image-0"], ["image-1", "image-2"], ["image-3"]]


def test_images_of_older_user_turns_become_a_placeholder():
    turns = chat([2, 1, 0, 1, 1])
    assert bound_images(turns, ImageBounds(max_images=20, history_turns=3)) == 3
    users = [t for t in turns if t.role == "user"]
    assert [names(t) for t in users] == [[], [], [], ["image-3"], ["image-4"]]
    assert users[0].text == "look 0\n" + placeholder(2) and users[1].text.endswith("[1 earlier image omitted]")
    assert users[2].text == "look 4"  # a turn without images is left alone


def test_beyond_max_images_the_oldest_go_first_newest_kept_within_a_turn():
    turns = chat([3, 3, 2])
    assert bound_images(turns, ImageBounds(max_images=6, history_turns=5)) == 2
    assert [names(t) for t in turns if t.role == "user"] == [
        ["image-2"], ["image-3", "image-4", "image-5"], ["image-6", "image-7"]]
    assert turns[0].text == "look 0\n[2 earlier images omitted]"


def test_the_current_message_over_the_limit_is_a_400_naming_it():
    with pytest.raises(InvalidRequest) as refused:
        bound_images(chat([0, 3]), ImageBounds(max_images=2))
    assert refused.value.status == 400 and refused.value.code == "too_many_images"
    assert "3 images" in refused.value.message and "MAX_IMAGES" in refused.value.message
    turns = chat([5, 2])  # exactly at the limit: sent, the history gives way
    assert bound_images(turns, ImageBounds(max_images=2)) == 5 and names(turns[-1]) == ["image-5", "image-6"]


def test_a_long_chat_with_screenshots_stops_growing():
    sizes = []
    for length in (5, 20, 80):
        payload = build_payload(Conversation("", chat([1] * length)), "claude-sonnet-4.5")
        state = payload["conversationState"]
        sent = [m["userInputMessage"].get("images", []) for m in state["history"] if "userInputMessage" in m]
        sent.append(state["currentMessage"]["userInputMessage"].get("images", []))
        sizes.append(sum(len(i) for i in sent))
    assert sizes == [5, 5, 5]  # the last IMAGE_HISTORY_TURNS user turns' images, however long the chat


# -- through the routes: the settings apply, the 400 comes before any call to Kiro --------------------------------

def openai_message(count: int) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": "look"}] + [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}] * count}


def anthropic_message(count: int) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": "look"}] + [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}] * count}


ROUTES = [("/v1/chat/completions", {"model": "claude-sonnet-4-5"}, openai_message),
          ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 64}, anthropic_message)]


@pytest.mark.parametrize("path,base,message", ROUTES)
def test_too_many_images_in_the_current_message_is_a_400_before_kiro(settings, fake_upstream, path, base, message):
    client = create_app(replace(settings, max_images=3)).test_client()
    response = client.post(path, json={**base, "messages": [message(4)]}, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "MAX_IMAGES" in text and "4 images" in text
    if path == "/v1/chat/completions":  # Anthropic's error envelope has no code
        assert response.get_json()["error"]["code"] == "too_many_images"
    assert fake_upstream.requests() == []


@pytest.mark.parametrize("path,base,message", ROUTES)
def test_kiro_gets_only_the_recent_images_and_placeholders(settings, fake_upstream, path, base, message):
    client = create_app(replace(settings, max_images=3, image_history_turns=2)).test_client()
    messages = []
    for count in (2, 1, 2):
        messages += [message(count), {"role": "assistant", "content": "seen"}]
    response = client.post(path, json={**base, "messages": messages[:-1]}, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    state = fake_upstream.requests()[-1]["body"]["conversationState"]
    users = [m["userInputMessage"] for m in state["history"] if "userInputMessage" in m]
    users.append(state["currentMessage"]["userInputMessage"])
    assert [len(u.get("images", [])) for u in users] == [0, 1, 2]
    assert users[0]["content"].endswith("[2 earlier images omitted]")
