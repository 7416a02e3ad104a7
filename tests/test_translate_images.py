import base64

import pytest

from ki2api.errors import InvalidRequest
from ki2api.translate.images import MAX_IMAGE_BYTES, from_data_url, kiro_image

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 20
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x00" * 20
GIF = b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 20
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 20


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("media_type,raw,fmt", [
    ("image/png", PNG, "png"), ("image/jpeg", JPEG, "jpeg"), ("image/jpg", JPEG, "jpeg"),
    ("image/gif", GIF, "gif"), ("image/webp", WEBP, "webp"), ("IMAGE/PNG", PNG, "png"),
])
def test_supported_images_become_kiro_images(media_type, raw, fmt):
    image = kiro_image(media_type, b64(raw), "where")
    assert image == {"format": fmt, "source": {"bytes": b64(raw)}}


def test_base64_with_line_breaks_is_normalised():
    wrapped = "\n".join(b64(PNG)[i:i + 8] for i in range(0, len(b64(PNG)), 8))
    assert kiro_image("image/png", wrapped, "w")["source"]["bytes"] == b64(PNG)


@pytest.mark.parametrize("media_type,data,words", [
    ("image/bmp", b64(b"BM" + b"\x00" * 30), "not supported"),
    ("image/svg+xml", b64(b"<svg/>"), "not supported"),
    ("text/plain", b64(b"hello"), "not supported"),
    ("image/png", "not base64!!", "not valid base64"),
    ("image/png", "", "empty"),
    ("image/png", b64(JPEG), "JPEG data"),
    ("image/gif", b64(b"hello world, not an image"), "not a PNG"),
    ("image/png", b64(PNG + b"\x00" * MAX_IMAGE_BYTES), "larger than 5 MiB"),
])
def test_bad_images_are_refused_naming_the_place(media_type, data, words):
    with pytest.raises(InvalidRequest) as info:
        kiro_image(media_type, data, "messages[0].content[1]")
    assert info.value.status == 400
    assert info.value.param == "messages[0].content[1]"
    assert info.value.code == "invalid_image"
    assert words in info.value.message


def test_exactly_the_limit_is_accepted():
    raw = PNG + b"\x00" * (MAX_IMAGE_BYTES - len(PNG))
    assert kiro_image("image/png", b64(raw), "w")["format"] == "png"


def test_data_urls():
    assert from_data_url(f"data:image/png;base64,{b64(PNG)}", "w")["format"] == "png"
    assert from_data_url(f"data:image/jpeg;name=x.jpg;base64,{b64(JPEG)}", "w")["format"] == "jpeg"


@pytest.mark.parametrize("url,words", [
    ("https://example.com/cat.png", "send the image inline as a data: URL"),
    ("http://127.0.0.1/cat.png", "send the image inline as a data: URL"),
    ("file:///etc/passwd", "must be a data: URL"),
    ("data:image/png,rawbytes", "base64-encoded"),
    ("data:image/png;base64", "base64-encoded"),
    ("", "non-empty"),
    (None, "non-empty"),
])
def test_other_urls_are_refused(url, words):
    with pytest.raises(InvalidRequest) as info:
        from_data_url(url, "img")
    assert words in info.value.message and info.value.param == "img"
