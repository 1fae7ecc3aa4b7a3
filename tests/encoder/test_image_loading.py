"""encoder/images.py: real photos load as RGB; every bad file is refused with an InputError naming it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from encoder.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, load_image
from encoder.types import InputError


def _jpeg(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _refused(source, match: str) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        load_image(source, note_id="n7", field="images[2]")
    err = info.value
    assert err.note_id == "n7" and err.field == "images[2]"
    assert "n7" in str(err) and "images[2]" in str(err)
    return err


def test_real_photo_from_path_and_bytes_agree(real_photos, tmp_path):
    data = _jpeg(real_photos["astronaut"])
    path = tmp_path / "astronaut.jpg"
    path.write_bytes(data)
    from_path, from_bytes = load_image(path), load_image(data)
    assert from_path.mode == "RGB" and from_path.size == (512, 512)
    assert np.array_equal(np.asarray(from_path), np.asarray(from_bytes))
    assert load_image(str(path)).size == (512, 512)


def test_grocery_photos_load(grocery_photo_paths):
    for path in grocery_photo_paths[:4]:
        image = load_image(path)
        assert image.mode == "RGB" and min(image.size) >= 16


def test_exif_orientation_is_applied(real_photos):
    photo = real_photos["rocket"]  # 640x427, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    image = load_image(_jpeg(photo, exif=exif.tobytes()))
    assert image.size == (photo.height, photo.width)


def test_first_frame_of_an_animation(real_photos):
    frames = [real_photos["coffee"].resize((64, 48)), Image.new("RGB", (64, 48), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    first = np.asarray(load_image(buf.getvalue()), dtype=np.float32)
    assert first.shape == (48, 64, 3)
    assert first[..., 2].mean() < 250  # not the all-blue second frame


def test_transparency_is_composited_on_white_and_grey_becomes_rgb(real_photos):
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent red
    assert np.asarray(load_image(_png(rgba))).min() == 255
    grey = real_photos["camera"].convert("L")
    assert load_image(_png(grey)).mode == "RGB"


def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.jpg", "file not found")


def test_oversize_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.jpg"
    with path.open("wb") as f:  # sparse file: no 20 MiB actually written
        f.truncate(MAX_IMAGE_BYTES + 1)
    _refused(path, "over the .*-byte limit")
    with pytest.raises(InputError, match="over the"):
        load_image(b"\0" * (MAX_IMAGE_BYTES + 1))


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n" * 20)
    _refused(path, "not an image")


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.98])
def test_truncated_jpeg_is_refused(real_photos, fraction):
    data = _jpeg(real_photos["chelsea"])
    _refused(data[: int(len(data) * fraction)], "truncated")


def test_truncated_png_is_refused(real_photos):
    data = _png(real_photos["coins"])
    _refused(data[: len(data) // 2], "truncated")


def test_truncated_stays_refused_when_pillow_is_relaxed_globally(real_photos, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = _jpeg(real_photos["chelsea"])
    _refused(data[: len(data) // 2], "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for whoever set it


def test_corrupt_jpeg_body_is_refused(real_photos):
    data = bytearray(_jpeg(real_photos["astronaut"]))
    data[len(data) // 3 : len(data) // 3 + 2000] = b"\xff" * 2000  # markers in the entropy-coded data
    with pytest.raises(InputError, match="images\\[2\\]") as info:
        load_image(bytes(data), note_id="n7", field="images[2]")
    assert "corrupt" in str(info.value) or "truncated" in str(info.value)


def test_decompression_bomb_small_on_disk_is_refused_from_the_header(tmp_path):
    side = int((MAX_IMAGE_PIXELS * 1.2) ** 0.5)  # 48M pixels: under Pillow's own warning limit
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path, optimize=True)
    assert path.stat().st_size < 100_000  # tiny on disk
    _refused(path, "decompression bomb")


def test_decompression_bomb_over_pillows_limit_is_refused(tmp_path):
    path = tmp_path / "bigbomb.png"
    Image.new("1", (20_000, 10_000)).save(path)  # 200M pixels: Pillow itself refuses to open it
    _refused(path, "decompression bomb")


def test_tiny_image_is_refused():
    _refused(_png(Image.new("RGB", (15, 40), (9, 9, 9))), "too small")
    assert load_image(_png(Image.new("RGB", (16, 16)))).size == (16, 16)
