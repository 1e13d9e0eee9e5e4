"""Render an export document (rooms.export) as a download: JSON, Markdown or HTML.

The document is already privacy-filtered for its viewer; this module only
shapes it into words. File names carry the date and the role, never a name.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from rooms import cycle as cycle_picture
from rooms.errors import BadRequest
from rooms.protocol import ANSWER_LABELS, LINK_KIND_LABELS, SELF_QUALITY_LABELS
from rooms.types import COLOR_PATTERN

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TITLE = "Partsboard session export"

FORMATS: dict[str, tuple[str, str]] = {
    # fmt: (template, content type)
    "json": ("", "application/json; charset=utf-8"),
    "md": ("export.md.j2", "text/markdown; charset=utf-8"),
    "html": ("export.html.j2", "text/html; charset=utf-8"),
}
ROLE_WORDS = {"therapist": "therapist", "a": "partner-a", "b": "partner-b"}

KIND_GROUPS = (
    ("manager", "Managers", "protectors that work ahead of time"),
    ("firefighter", "Firefighters", "protectors that step in when pain breaks through"),
    ("exile", "Exiles", "parts that carry old hurt"),
    ("unsure", "Not sure yet", "parts that are simply parts for now"),
)
KIND_WORDS = {"manager": "manager", "firefighter": "firefighter", "exile": "exile",
              "unsure": "part"}
DETAIL_LABELS = (
    ("job", "Its job"),
    ("fear", "What it fears would happen if it stopped"),
    ("age", "How old it seems"),
    ("intent", "What it wants for me"),
    ("burden", "What it carries"),
)
_COLOR = re.compile(COLOR_PATTERN)
# Markdown punctuation that could start markup or raw HTML inside running text.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def render_export(doc: dict[str, Any], fmt: str) -> tuple[bytes, str, str]:
    """(body, content type, file name) of one export document in one format."""
    if fmt not in FORMATS:
        raise BadRequest("Choose json, md or html.", field="format")
    template, content_type = FORMATS[fmt]
    filename = export_filename(doc, fmt)
    if fmt == "json":
        body = json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    else:
        body = _environment().get_template(template).render(title=TITLE, **present(doc))
        if fmt == "md":
            body = re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"
    return body.encode("utf-8"), content_type, filename


def render_cycle(colls: dict[str, dict[str, Any]]) -> bytes | None:
    """The viewer's cycle picture as a standalone SVG (the export's markup), from the
    collections of their own live view; None when they see no "reacts to" link."""
    picture = cycle_picture.layout(colls["parts"], colls["links"].values())
    if not picture["nodes"]:
        return None
    macro = _environment().get_template("_cycle.html.j2").module.cycle_svg  # type: ignore[attr-defined]
    return str(macro(picture, _colors(colls["partners"]))).strip().encode("utf-8")


def _colors(partners: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each partner's own colour when it is a valid one, else a neutral grey."""
    colors = {}
    for key, info in partners.items():
        color = str(info.get("color", ""))
        colors[key] = color if _COLOR.match(color) else "#5d666b"
    return colors


def export_filename(doc: dict[str, Any], fmt: str) -> str:
    day = _when(doc.get("exported_at")).strftime("%Y-%m-%d")
    role = ROLE_WORDS.get(str(doc.get("viewer")), "export")
    return f"partsboard-export-{day}-{role}.{fmt}"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"),
                                     disabled_extensions=("md", "md.j2"),
                                     default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md_escape
    return env


def md_escape(text: object, indent: int = 0) -> str:
    """Plain text made inert in Markdown: punctuation escaped, each line break kept
    as a hard break inside the current block (continuation lines indented)."""
    lines = str(text).splitlines() or [""]
    out = []
    for line in lines:
        line = _MD_SPECIAL.sub(r"\\\1", line.strip())
        if line[:1] in ("-", "+", "=") or re.match(r"^\d+[.)]", line):
            line = "\\" + line
        out.append(line)
    return ("  \n" + " " * indent).join(out)


def _when(at: object) -> datetime:
    seconds = float(at) if isinstance(at, int | float) else 0.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.fromtimestamp(0, tz=UTC)


def _moment(at: object) -> str:
    moment = _when(at)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def self_energy(scores: dict[str, Any]) -> str:
    """The average of the 8 C's, as the board sizes a partner's Self."""
    values = [v for v in scores.values() if isinstance(v, int | float)]
    return f"{sum(values) / len(values):.1f}" if values else "0"


def _names_and(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def present(doc: dict[str, Any]) -> dict[str, Any]:
    """The document shaped for the templates: words, groups and sentences."""
    viewer = str(doc["viewer"])
    is_therapist = viewer == "therapist"
    partners_doc: dict[str, dict[str, Any]] = doc["partners"]
    names = {key: str(info["name"]) for key, info in partners_doc.items()}
    parts = {str(part["id"]): part for part in doc["parts"]}
    stage_names = [str(name) for name in doc["stage_names"]]

    def stage_name(stage: int) -> str:
        return stage_names[stage - 1] if 1 <= stage <= len(stage_names) else f"Stage {stage}"

    def private(item_shared: bool) -> bool:
        return not is_therapist and not item_shared

    # "How do you feel toward this part?": each answer with its time, by part.
    feelings: dict[str, list[dict[str, Any]]] = {}
    for feeling in doc.get("feelings", ()):
        words = [SELF_QUALITY_LABELS.get(q, q).lower() for q in feeling["qualities"]]
        feelings.setdefault(str(feeling["part"]), []).append({
            "at": _moment(feeling["at"]), "self": ", ".join(words), "other": feeling["other"]})

    partners = []
    for key in ("a", "b"):
        if key not in partners_doc:
            continue
        color = str(partners_doc[key].get("color", ""))
        own = [p for p in doc["parts"] if p["owner"] == key]
        groups = []
        for kind, label, hint in KIND_GROUPS:
            members = [
                {"name": p["name"], "blend": p.get("blend"), "private": private(p["shared"]),
                 "by_therapist": bool(p.get("by_therapist")),
                 "with_therapist": private(p["shared"]) and bool(p.get("with_therapist")),
                 "details": [(label, p[field]) for field, label in DETAIL_LABELS
                             if p.get(field)],
                 "feelings": feelings.get(str(p["id"]), [])}
                for p in own if p["kind"] == kind
            ]
            if members:
                groups.append({"label": label, "hint": hint, "parts": members})
        checkin = next((c for c in doc["checkins"] if c["owner"] == key), None)
        partners.append({
            "key": key,
            "name": names[key],
            "color": color if _COLOR.match(color) else None,
            "is_viewer": key == viewer,
            "groups": groups,
            "checkin": None if checkin is None else {
                "scores": [(label, checkin["scores"].get(quality))
                           for quality, label in SELF_QUALITY_LABELS.items()],
                "note": checkin.get("note", ""),
                "private": private(checkin["shared"]),
                "at": _moment(checkin.get("at", 0)),
                "energy": self_energy(checkin["scores"]),
                # How Self energy changed over the session, oldest first.
                "history": [{"at": _moment(past.get("at", 0)),
                             "energy": self_energy(past["scores"]), "note": past.get("note", "")}
                            for past in checkin.get("history", ())],
            },
        })

    def part_label(part_id: str) -> str:
        return str(parts[part_id]["name"])

    within: list[dict[str, Any]] = []
    cycle: list[dict[str, Any]] = []
    for link in doc["links"]:
        source, target = parts.get(link["source"]), parts.get(link["target"])
        if source is None or target is None:
            continue
        sentence = {
            "source": source["name"],
            "verb": LINK_KIND_LABELS[link["kind"]],
            "target": target["name"],
            "source_owner": names.get(source["owner"], ""),
            "target_owner": names.get(target["owner"], ""),
            "label": link.get("label", ""),
            "by_therapist": bool(link.get("by_therapist")),
            "private": private(bool(source["shared"]) and bool(target["shared"])),
        }
        (cycle if source["owner"] != target["owner"] else within).append(sentence)

    needs: list[dict[str, Any]] = []
    take_home: list[dict[str, Any]] = []
    for need in doc["needs"]:
        part = parts.get(need["part"])
        if part is None:
            continue
        owner = str(need["owner"])
        other = "b" if owner == "a" else "a"
        item = {
            "part": part_label(need["part"]),
            "owner": names.get(owner, ""),
            "other": names.get(other, ""),
            "text": need["text"],
            "request": need.get("request"),
            "answer": ANSWER_LABELS.get(need.get("answer")),
            "answer_note": need.get("answer_note", ""),
            "self_offer": need.get("self_offer"),
            "earlier": [{"request": past["request"], "answer": ANSWER_LABELS.get(past["answer"]),
                         "note": past.get("note", ""), "at": _moment(past.get("at", 0))}
                        for past in need.get("answers", ())],
            "private": private(bool(part["shared"]) and bool(need["shared"])),
        }
        needs.append(item)
        if need.get("answer") == "yes" and need.get("request"):
            take_home.append(item)

    turns = [{
        "at": _moment(turn["at"]),
        "speaker": names.get(turn["speaker"], ""),
        "listener": names.get(turn["listener"], ""),
        "part": part_label(turn["part"]) if turn.get("part") in parts else "",
        "spoken": turn["spoken"], "reflection": turn["reflection"],
        "heard": turn["heard"], "correction": turn["correction"],
    } for turn in doc.get("turns", ())]
    uturns = [{"at": _moment(u["at"]), "partner": names.get(u["partner"], ""),
               "prompt": u["prompt"], "answer": u["answer"], "private": private(u["shared"])}
              for u in doc.get("uturns", ())]

    agreements = []
    for agreement in doc["agreements"]:
        acked = [names[p] for p in ("a", "b") if p in agreement.get("acks", ()) and p in names]
        if not acked:
            acks = "Not acknowledged yet."
        elif len(acked) == len(names):
            acks = f"Acknowledged by {_names_and(acked)}."
        else:
            acks = f"Acknowledged by {_names_and(acked)} so far."
        agreements.append({"text": agreement["text"], "acks": acks})

    history = [
        {"stage": change["stage"], "name": stage_name(int(change["stage"])),
         "at": _moment(change["at"])}
        for change in doc["stage_history"]
    ]
    stage = int(doc["stage"])
    return {
        "is_therapist": is_therapist,
        "viewer_name": names.get(viewer, ""),
        "other_name": names.get("b" if viewer == "a" else "a", "") if not is_therapist else "",
        "drafts_with_therapist": bool(doc["settings"]["therapist_sees_drafts"]),
        "exported_at": _moment(doc["exported_at"]),
        "stage": stage,
        "stage_name": stage_name(stage),
        "stage_count": len(stage_names),
        "history": history,
        "agreements": agreements,
        "partners": partners,
        "within": within,
        "cycle": cycle,
        "picture": cycle_picture.layout(parts, doc["links"]),
        "colors": _colors(partners_doc),
        "needs": needs,
        "take_home": take_home,
        "turns": turns,
        "uturns": uturns,
        "notes": [
            {"text": note["text"], "at": _moment(note["at"])} for note in doc.get("notes", ())
        ] if is_therapist else [],
    }
