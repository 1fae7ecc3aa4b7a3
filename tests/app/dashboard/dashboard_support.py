"""Helpers of the dashboard browser tests (conftest.py holds the fixtures): the real-photo library, the
planted copy, the accounts, Chromium's flags, signing in."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / ".." / "shared" / "data"
GROCERY = DATA / "grocery"
ARTIFACTS = REPO / "artifacts" / "dashboard"  # gitignored: screenshots kept by the browser tests
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHOTOS = {  # skimage photo -> (title, body)
    "astronaut": ("Meeting an astronaut", "Portrait of an astronaut in a white suit next to the flag."),
    "coffee": ("Latte art this morning", "A cup of coffee with a leaf drawn in the milk foam."),
    "rocket": ("Launch day", "The rocket on the pad, hours before the launch."),
    "chelsea": ("My cat Chelsea", "Chelsea the tabby cat looking at the camera."),
}
USERS = {"admin1": ("admin", "admin-password-1"), "mod1": ("moderator", "moderator-password-1")}
SERVER_START_S = 180  # loading the encoder and Gradio on a busy 2-core machine


@dataclass
class Server:
    url: str
    home: Path
    planted_copy: Path  # a DISC21-style copy of the library's `astronaut` photo
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_library(folder: Path):
    import skimage.data
    from PIL import Image

    from app.notes import Note, write_notes

    (folder / "images").mkdir(parents=True, exist_ok=True)
    notes = []
    for name, (title, body) in PHOTOS.items():
        path = folder / "images" / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path, quality=92)
        notes.append(Note(note_id=name, title=title, body=body, images=[path]))
    if GROCERY.is_dir():
        lines = [ln for ln in (GROCERY / "dataset" / "train.txt").read_text().splitlines() if ln.strip()]
        for i, line in enumerate(lines[::600][:2]):
            notes.append(Note(note_id=f"grocery-{i}", title="From the grocery store", body="Fresh produce today.",
                              images=[GROCERY / "dataset" / line.split(",")[0].strip()]))
    write_notes(notes, folder)
    return notes


def planted_copy(source: Path, out: Path) -> Path:
    import augly.image as imaugs
    from PIL import Image

    with Image.open(source) as im:
        image = im.convert("RGB")
    cropped = imaugs.crop(image, x1=0.08, y1=0.05, x2=0.95, y2=0.92)
    imaugs.encoding_quality(imaugs.overlay_text(cropped), quality=30).convert("RGB").save(out)
    return out


def sign_in(page, server: Server, username: str, password: str | None = None, next_path: str = "/dashboard/"):
    """Open next_path, get sent to the sign-in form, fill it, submit."""
    page.goto(server.url + next_path)
    page.fill("#username", username)
    page.fill("#password", password if password is not None else USERS[username][1])
    page.click("#sign-in")
