"""rou3's own lookup cases, as data, run over every matching strategy.

The cases are a translation of the lookups in h3js/rou3's ``test/router.test.ts``,
``test/find.test.ts`` and the ``match`` lists of ``test/_regexp-cases.ts``
(rou3 0.9.1, commit 39b0e9b): the same routes, the same request paths, the
same expected route and params. Left out: tree snapshots and ``removeRoute``
(h3lab has no route removal), and the ``findAllRoutes``/``matchAll`` lists.

A route is ``"[METHOD ]pattern[ #label]"`` (GET when no method, ``*`` for
rou3's method-agnostic ``""``); an expected answer is the label or pattern of
the route and its params (``None``: rou3's test does not pin the params), or
``None`` for no match.

Where h3lab deliberately differs from rou3 the case would be in ``DIFFERENCES``
with h3lab's own answer (there is none today); ``REFUSED`` lists the rou3
patterns h3lab refuses at registration (``ValueError``), and ``DUPLICATES``
rou3's duplicate registrations, which h3lab refuses too (so "many static
routes" registers ``/dup`` once).

Counts: 270 lookups in 89 cases; 266 pass under every strategy, 4 belong to
the 2 refused patterns; plus the 3 duplicate registrations.
"""

from __future__ import annotations

from typing import Any

import pytest

from h3lab.routing import Route, Router, routing_path
from tests.conftest import build_router, router_variants

Expected = tuple[str, dict[str, str] | None] | None
Lookup = tuple[str, str, Expected]  # method, raw path, expected


def lookups(table: dict[str, Expected], method: str = "GET") -> list[Lookup]:
    return [(method, path, expected) for path, expected in table.items()]


def own(*paths: str) -> list[Lookup]:
    """Each route, looked up by its own pattern text."""
    return [("GET", path, (path, None)) for path in paths]


CASES: dict[str, tuple[list[str], list[Lookup]]] = {}

# --- find.test.ts ------------------------------------------------------------

CASES["find: route matching"] = (
    [
        "/test",
        "/test/:id",
        "/test/:idYZ/y/z",
        "/test/:idY/y",
        "/test/foo",
        "/test/foo/*",
        "/test/foo/**",
        "/test/foo/bar/qux",
        "/test/foo/baz",
        "/test/fooo",
        "/another/path",
        "/wildcard/**",
        "/static\\:path/\\*/\\*\\*",
        "/**",
    ],
    lookups(
        {
            "/test": ("/test", None),
            "/test/foo": ("/test/foo", None),
            "/test/fooo": ("/test/fooo", None),
            "/another/path": ("/another/path", None),
            "/test/123": ("/test/:id", {"id": "123"}),
            "/test/123/y": ("/test/:idY/y", {"idY": "123"}),
            "/test/123/y/z": ("/test/:idYZ/y/z", {"idYZ": "123"}),
            "/test/foo/123": ("/test/foo/*", {"0": "123"}),
            "/test/foo/123/456": ("/test/foo/**", {"_": "123/456"}),
            "/wildcard/foo": ("/wildcard/**", {"_": "foo"}),
            "/wildcard/foo/bar": ("/wildcard/**", {"_": "foo/bar"}),
            "/wildcard": ("/wildcard/**", {"_": ""}),
            "/anything": ("/**", {"_": "anything"}),
            "/any/deep/path": ("/**", {"_": "any/deep/path"}),
            "/static:path/*/**": ("/static\\:path/\\*/\\*\\*", None),
        }
    ),
)

CASES["find: hyphenated param names"] = (
    ["/users/:user-id", "/users/:user-id/posts/:post-id", "/items/:item-name/details"],
    lookups(
        {
            "/users/123": ("/users/:user-id", {"user-id": "123"}),
            "/users/abc/posts/456": (
                "/users/:user-id/posts/:post-id",
                {"user-id": "abc", "post-id": "456"},
            ),
            "/items/widget/details": ("/items/:item-name/details", {"item-name": "widget"}),
            "/users/foo/bar": None,
        }
    ),
)

CASES["find: param names that are not group names"] = (
    [
        "/files/:file-name.json",
        "/blog/:post-id(\\d+)",
        "/n/:0.txt",
        "/mix/:a-b.:a_b",
        "/run/:a--b.:a_-b",
        "/w/:file-name.*",
    ],
    lookups(
        {
            "/files/readme.json": ("/files/:file-name.json", {"file-name": "readme"}),
            "/blog/123": ("/blog/:post-id(\\d+)", {"post-id": "123"}),
            "/blog/abc": None,
            "/n/42.txt": ("/n/:0.txt", {"0": "42"}),
            "/mix/x.y": ("/mix/:a-b.:a_b", {"a-b": "x", "a_b": "y"}),
            "/run/x.y": ("/run/:a--b.:a_-b", {"a--b": "x", "a_-b": "y"}),
            "/w/logo.dark": ("/w/:file-name.*", {"file-name": "logo", "0": "dark"}),
        }
    ),
)

CASES["find: method-agnostic fallback"] = (
    ["GET /x/:id(\\d+) #GET-DATA", "* /x/:id #AGN"],
    [
        ("GET", "/x/42", ("GET-DATA", None)),
        ("GET", "/x/abc", None),
        ("POST", "/x/abc", ("AGN", None)),
    ],
)

CASES["find: prototype keys"] = (
    ["/static #S", "/:p #P"],
    [
        ("__proto__", "/static", None),
        ("constructor", "/static", None),
        ("toString", "/static", None),
        ("GET", "/__proto__", ("P", {"p": "__proto__"})),
    ],
)

CASES["find: many static routes"] = (
    [
        *[f"/page{i}" for i in range(10)],
        "/ #ROOT",
        "* /any #ANY",
        "GET /dup #D-FIRST",
        "POST /page0/:id",
    ],
    [
        ("GET", "/page0", ("/page0", None)),
        ("GET", "/page9", ("/page9", None)),
        ("GET", "/page9/", ("/page9", None)),
        ("GET", "/", ("ROOT", None)),
        ("GET", "//", ("ROOT", None)),
        ("GET", "/nope", None),
        ("DELETE", "/any", ("ANY", None)),
        ("POST", "/page0/42", ("/page0/:id", {"id": "42"})),
        ("POST", "/page1", None),
        ("GET", "/dup", ("D-FIRST", None)),
        ("__proto__", "/page0", None),
        ("GET", "/__proto__", None),
        ("GET", "/constructor", None),
    ],
)

CASES["find: unusual method names"] = (
    ['GE"T /x/:id #QUOTED', "M\\N /x/:id #BACKSLASH"],
    [
        ('GE"T', "/x/1", ("QUOTED", None)),
        ("M\\N", "/x/1", ("BACKSLASH", None)),
        ("GET", "/x/1", None),
    ],
)

CASES["find: wide static fan-out"] = (
    [
        *[f"/res{i}/:id" for i in range(40)],
        "/undefined/:id",
        "/__proto__/:id",
        "/res0/:id/deep",
        "/:top",
        "/**",
    ],
    [
        ("GET", "/res0/1", ("/res0/:id", {"id": "1"})),
        ("GET", "/res39/x", ("/res39/:id", {"id": "x"})),
        ("GET", "/res0/1/deep", ("/res0/:id/deep", {"id": "1"})),
        ("GET", "/nope", ("/:top", {"top": "nope"})),
        ("GET", "/nope/deeper", ("/**", None)),
        ("POST", "/res0/1", None),
        ("GET", "/undefined/7", ("/undefined/:id", {"id": "7"})),
        ("GET", "/__proto__/7", ("/__proto__/:id", {"id": "7"})),
        ("GET", "/constructor/7", ("/**", None)),
        ("GET", "/undefined", ("/:top", {"top": "undefined"})),
    ],
)

CASES["find: regex constraints with embedded groups"] = (
    [
        "/c/:id(a(?<extra>b)?c) #INNER-NAMED",
        "/m/:a(\\d+)/:b([a-z]+) #MULTI",
        "/n/:num(\\d+) #WHOLE",
        "/file/*.png #MID-WILDCARD",
        "/uni/:id(a(?<é>b)c) #UNI-FALLBACK",
    ],
    lookups(
        {
            "/c/abc": ("INNER-NAMED", {"id": "abc", "extra": "b"}),
            "/c/ac": ("INNER-NAMED", {"id": "ac"}),
            "/c/ax": None,
            "/m/12/ab": ("MULTI", {"a": "12", "b": "ab"}),
            "/m/12/34": None,
            "/n/42": ("WHOLE", {"num": "42"}),
            "/n/x": None,
            "/file/logo.png": ("MID-WILDCARD", {"0": "logo"}),
            "/uni/abc": ("UNI-FALLBACK", {"id": "abc", "é": "b"}),
            "/uni/axc": None,
        }
    ),
)

CASES["find: wildcard tail extraction"] = (
    ["/files/**:path #FILES", "/opt/** #OPT", "/pre/:x/**:rest #PRE"],
    lookups(
        {
            "/files/a/b": ("FILES", {"path": "a/b"}),
            "/files/a//": ("FILES", {"path": "a"}),
            "/files//a": ("FILES", {"path": "/a"}),
            "/files": None,
            "/files/": None,
            "/opt": ("OPT", {"_": ""}),
            "/opt//": ("OPT", {"_": ""}),
            "/opt/a/b": ("OPT", {"_": "a/b"}),
            "/pre/v/a/b": ("PRE", {"x": "v", "rest": "a/b"}),
        }
    ),
)

for _mode, _extra in (("chain", []), ("map", [f"/page{i}" for i in range(10)])):
    CASES[f"find: doubled trailing slash ({_mode})"] = (
        ["/w5", "/:top", *_extra],
        lookups({"/w5//": ("/w5", None), "/w5/": ("/w5", None), "/w5///": None}),
    )

for _route in ("/a", "/a/", "/a//", "/a///"):
    CASES[f"find: route {_route!r} with trailing empty segments"] = (
        [_route],
        lookups({"/a": (_route, None), "/a/": (_route, None), "/a//": (_route, None)})
        + lookups({"/a///": None}),
    )

CASES["find: empty middle segment"] = (
    ["/a//b"],
    lookups({"/a//b": ("/a//b", None), "/a/b": None}),
)

CASES["find: same-node sibling selection"] = (
    [
        "/t/*",
        "/t/:id",
        "/w/**",
        "/w/**:rest",
        "/:y(\\d+)",
        "/*/*",
        "/x/:id(\\d+)",
        "/x/**",
        "/d/:a(\\d+)/:x",
        "/d/:a/:x([a-z]+)",
        "/e/:a(\\d+)/:x([a-z]+)",
        "/e/:a/:x([a-z]+)",
    ],
    lookups(
        {
            "/t/v": ("/t/:id", {"id": "v"}),
            "/t": ("/t/*", None),
            "/w/v": ("/w/**:rest", {"rest": "v"}),
            "/w": ("/w/**", None),
            "/a": ("/*/*", {"0": "a"}),
            "/7": ("/:y(\\d+)", {"y": "7"}),
            "/x/a": ("/x/**", {"_": "a"}),
            "/x/7": ("/x/:id(\\d+)", {"id": "7"}),
            "/d/9/abc": ("/d/:a(\\d+)/:x", None),
            "/e/q/abc": ("/e/:a/:x([a-z]+)", None),
        }
    ),
)

CASES["find: end-of-path optional fallback"] = (
    ["/p/:id #P-REQUIRED", "/p/* #P-OPTIONAL", "/w/**:name #W-REQUIRED", "/w/** #W-OPTIONAL"],
    lookups(
        {
            "/p": ("P-OPTIONAL", None),
            "/w": ("W-OPTIONAL", None),
            "/p/1": ("P-REQUIRED", None),
            "/w/1": ("W-REQUIRED", None),
        }
    ),
)

# --- router.test.ts ----------------------------------------------------------

CASES["router: static routes"] = (
    ["/", "/route", "/another-router", "/this/is/yet/another/route"],
    own("/", "/route", "/another-router", "/this/is/yet/another/route"),
)

CASES["router: retrieve placeholders"] = (
    [
        "/blog/*",
        "/carbon/:element",
        "/carbon/:element/test/:testing",
        "/this/:route/has/:cool/stuff",
    ],
    lookups(
        {
            "/carbon/test1": ("/carbon/:element", {"element": "test1"}),
            "/carbon": None,
            "/carbon/": None,
            "/carbon/test2/test/test23": (
                "/carbon/:element/test/:testing",
                {"element": "test2", "testing": "test23"},
            ),
            "/this/test/has/more/stuff": (
                "/this/:route/has/:cool/stuff",
                {"route": "test", "cool": "more"},
            ),
            "/blog": ("/blog/*", None),
            "/blog/": ("/blog/*", None),
            "/blog/123": ("/blog/*", None),
        }
    ),
)

CASES["router: params at every depth"] = (
    ["/", "/:a", "/:a/:y/:x/:b", "/:a/:x/:b", "/:a/:b"],
    lookups(
        {
            "/": ("/", None),
            "/a": ("/:a", {"a": "a"}),
            "/a/b": ("/:a/:b", {"a": "a", "b": "b"}),
            "/a/x/b": ("/:a/:x/:b", {"a": "a", "b": "b", "x": "x"}),
            "/a/y/x/b": ("/:a/:y/:x/:b", {"a": "a", "b": "b", "x": "x", "y": "y"}),
        }
    ),
)

CASES["router: package paths"] = (
    [
        "/",
        "/:packageAndRefOrSha",
        "/:owner/:repo/",
        "/:owner/:repo/:packageAndRefOrSha",
        "/:owner/:repo/:npmOrg/:packageAndRefOrSha",
    ],
    lookups(
        {
            "/tinylibs/tinybench/tiny@232": (
                "/:owner/:repo/:packageAndRefOrSha",
                {"owner": "tinylibs", "repo": "tinybench", "packageAndRefOrSha": "tiny@232"},
            ),
            "/tinylibs/tinybench/@tinylibs/tiny@232": (
                "/:owner/:repo/:npmOrg/:packageAndRefOrSha",
                {
                    "owner": "tinylibs",
                    "repo": "tinybench",
                    "npmOrg": "@tinylibs",
                    "packageAndRefOrSha": "tiny@232",
                },
            ),
        }
    ),
)

CASES["router: wildcard lookups"] = (
    ["/polymer/**:id", "/polymer/another/route", "/route/:p1/something/**:rest"],
    lookups(
        {
            "/polymer/another/route": ("/polymer/another/route", None),
            "/polymer/anon": ("/polymer/**:id", {"id": "anon"}),
            "/polymer/foo/bar/baz": ("/polymer/**:id", {"id": "foo/bar/baz"}),
            "/route/param1/something/c/d": (
                "/route/:p1/something/**:rest",
                {"p1": "param1", "rest": "c/d"},
            ),
        }
    ),
)

CASES["router: root wildcard"] = (
    ["/**"],
    lookups(
        {
            "/anything": ("/**", {"_": "anything"}),
            "/any/deep/path": ("/**", {"_": "any/deep/path"}),
        }
    ),
)

CASES["router: fallback to dynamic"] = (
    ["/wildcard/**", "/test/**", "/test", "/dynamic/*"],
    lookups(
        {
            "/wildcard": ("/wildcard/**", None),
            "/wildcard/": ("/wildcard/**", None),
            "/wildcard/abc": ("/wildcard/**", {"_": "abc"}),
            "/wildcard/abc/def": ("/wildcard/**", {"_": "abc/def"}),
            "/dynamic": ("/dynamic/*", None),
            "/test": ("/test", None),
            "/test/": ("/test", None),
            "/test/abc": ("/test/**", {"_": "abc"}),
        }
    ),
)

CASES["router: unnamed placeholders"] = (
    ["/polymer/**", "/polymer/route/*"],
    lookups(
        {
            "/polymer/foo/bar": ("/polymer/**", {"_": "foo/bar"}),
            "/polymer/route/anon": ("/polymer/route/*", {"0": "anon"}),
            "/polymer/constructor": ("/polymer/**", {"_": "constructor"}),
        }
    ),
)

CASES["router: mixed params in one segment"] = (
    ["/files/:category/:id,name=:name.txt"],
    lookups(
        {
            "/files/test/123,name=foobar.txt": (
                "/files/:category/:id,name=:name.txt",
                {"category": "test", "id": "123", "name": "foobar"},
            ),
            "/files/test": None,
        }
    ),
)

CASES["router: npm scoped and plain"] = (
    ["/npm/:param1/:param2", "/npm/@:param1/:param2"],
    lookups(
        {
            "/npm/@test/123": ("/npm/@:param1/:param2", {"param1": "test", "param2": "123"}),
            "/npm/test/123": ("/npm/:param1/:param2", {"param1": "test", "param2": "123"}),
        }
    ),
)

CASES["router: npm scoped only"] = (
    ["/npm/@:param1/:param2"],
    lookups(
        {
            "/npm/@test/123": ("/npm/@:param1/:param2", {"param1": "test", "param2": "123"}),
            "/npm/test/123": None,
        }
    ),
)

CASES["router: regex constraint"] = (
    ["/users/:id(\\d+)"],
    lookups({"/users/123": ("/users/:id(\\d+)", {"id": "123"}), "/users/abc": None}),
)

CASES["router: regex alternation"] = (
    ["/files/:ext(png|jpg|gif)"],
    lookups(
        {
            "/files/png": ("/files/:ext(png|jpg|gif)", {"ext": "png"}),
            "/files/jpg": ("/files/:ext(png|jpg|gif)", {"ext": "jpg"}),
            "/files/pdf": None,
        }
    ),
)

CASES["router: regex then param"] = (
    ["/api/:version(v\\d+)/:resource"],
    lookups(
        {
            "/api/v2/users": (
                "/api/:version(v\\d+)/:resource",
                {"version": "v2", "resource": "users"},
            ),
            "/api/latest/users": None,
        }
    ),
)

CASES["router: regex beside plain param"] = (
    ["/users/:id(\\d+)", "/users/:slug"],
    lookups(
        {
            "/users/123": ("/users/:id(\\d+)", {"id": "123"}),
            "/users/abc": ("/users/:slug", {"slug": "abc"}),
        }
    ),
)

CASES["router: unnamed group"] = (
    ["/path/(\\d+)"],
    lookups({"/path/123": ("/path/(\\d+)", {"0": "123"}), "/path/abc": None}),
)

CASES["router: unnamed alternation"] = (
    ["/files/(png|jpg|gif)"],
    lookups(
        {
            "/files/png": ("/files/(png|jpg|gif)", {"0": "png"}),
            "/files/jpg": ("/files/(png|jpg|gif)", {"0": "jpg"}),
            "/files/pdf": None,
        }
    ),
)

CASES["router: unnamed group then static"] = (
    ["/path/(\\d+)/foo"],
    lookups({"/path/123/foo": ("/path/(\\d+)/foo", {"0": "123"}), "/path/abc/foo": None}),
)

CASES["router: unnamed groups in two segments"] = (
    ["/path/(\\d+)/(\\w+)"],
    lookups(
        {
            "/path/123/abc": ("/path/(\\d+)/(\\w+)", {"0": "123", "1": "abc"}),
            "/path/abc/abc": None,
            "/path/123/!": None,
        }
    ),
)

CASES["router: unnamed group beside plain param"] = (
    ["/path/(\\d+)", "/path/:slug"],
    lookups(
        {
            "/path/123": ("/path/(\\d+)", {"0": "123"}),
            "/path/abc": ("/path/:slug", {"slug": "abc"}),
        }
    ),
)

CASES["router: in-segment wildcard"] = (
    ["/files/*.png"],
    lookups({"/files/logo.png": ("/files/*.png", {"0": "logo"}), "/files/icon.jpg": None}),
)

CASES["router: two in-segment wildcards"] = (
    ["/files/file-*-*.png"],
    lookups(
        {
            "/files/file-a-b.png": ("/files/file-*-*.png", {"0": "a", "1": "b"}),
            "/files/file-a.png": None,
        }
    ),
)

CASES["router: in-segment wildcards in two segments"] = (
    ["/combo/*.png/*-v"],
    lookups(
        {
            "/combo/logo.png/abc-v": ("/combo/*.png/*-v", {"0": "logo", "1": "abc"}),
            "/combo/logo.png/v": None,
        }
    ),
)

CASES["router: optional last param"] = (
    ["/users/:id?"],
    lookups({"/users/123": ("/users/:id?", {"id": "123"}), "/users": ("/users/:id?", None)}),
)

CASES["router: optional middle param"] = (
    ["/api/:version?/users"],
    lookups(
        {
            "/api/v2/users": ("/api/:version?/users", {"version": "v2"}),
            "/api/users": ("/api/:version?/users", None),
        }
    ),
)

CASES["router: optional regex param"] = (
    ["/users/:id(\\d+)?"],
    lookups(
        {
            "/users/123": ("/users/:id(\\d+)?", {"id": "123"}),
            "/users": ("/users/:id(\\d+)?", None),
            "/users/abc": None,
        }
    ),
)

CASES["router: one or more"] = (
    ["/files/:path+"],
    lookups(
        {
            "/files/a/b/c": ("/files/:path+", {"path": "a/b/c"}),
            "/files/a": ("/files/:path+", {"path": "a"}),
            "/files": None,
        }
    ),
)

CASES["router: zero or more"] = (
    ["/files/:path*"],
    lookups(
        {
            "/files/a/b/c": ("/files/:path*", {"path": "a/b/c"}),
            "/files/a": ("/files/:path*", {"path": "a"}),
            "/files": ("/files/:path*", None),
        }
    ),
)

CASES["router: optional group in text"] = (
    ["/book{s}?"],
    lookups({"/book": ("/book{s}?", None), "/books": ("/book{s}?", None), "/bookss": None}),
)

CASES["router: optional group with a param"] = (
    ["/blog/:id(\\d+){-:title}?"],
    lookups(
        {
            "/blog/123": ("/blog/:id(\\d+){-:title}?", {"id": "123"}),
            "/blog/123-my-post": ("/blog/:id(\\d+){-:title}?", {"id": "123", "title": "my-post"}),
            "/blog/my-post": None,
        }
    ),
)

CASES["router: optional group with a segment"] = (
    ["/foo{/bar}?"],
    lookups({"/foo": ("/foo{/bar}?", None), "/foo/bar": ("/foo{/bar}?", None), "/foo/baz": None}),
)

CASES["router: trailing slash"] = (
    ["/route/without/trailing/slash", "/route/with/trailing/slash/"],
    lookups(
        {
            "/route/without/trailing/slash": ("/route/without/trailing/slash", None),
            "/route/with/trailing/slash/": ("/route/with/trailing/slash/", None),
            "/route/without/trailing/slash/": ("/route/without/trailing/slash", None),
            "/route/with/trailing/slash": ("/route/with/trailing/slash/", None),
        }
    ),
)

CASES["router: empty segments"] = (
    ["/test//route", "/test/:param/route"],
    lookups(
        {
            "/test//route": ("/test//route", None),
            "/test/id/route": ("/test/:param/route", None),
        }
    ),
)

# --- _regexp-cases.ts: each pattern alone, its "match" paths -------------------

REGEXP_CASES: dict[str, dict[str, dict[str, str]]] = {
    "/path": {"/path": {}, "/path/": {}},
    "/path/:param": {"/path/value": {"param": "value"}, "/path/value/": {"param": "value"}},
    "/path/get-:file.:ext": {"/path/get-file.txt": {"file": "file", "ext": "txt"}},
    "/path/:param1/:param2": {"/path/value1/value2": {"param1": "value1", "param2": "value2"}},
    "/path/*/foo": {
        "/path/anything/foo": {"0": "anything"},
        "/path//foo": {"0": ""},
        "/path//foo/": {"0": ""},
    },
    "/path//sub": {"/path//sub": {}, "/path//sub/": {}},
    "/path//:id": {"/path//value": {"id": "value"}},
    "/path/*.png": {"/path/icon.png": {"0": "icon"}},
    "/path/file-*-*.png": {"/path/file-a-b.png": {"0": "a", "1": "b"}},
    "/path/**": {
        "/path/": {"_": ""},
        "/path": {"_": ""},
        "/path/anything/more": {"_": "anything/more"},
    },
    "/base/**:path": {"/base/anything/more": {"path": "anything/more"}},
    "/static%3Apath/\\*/\\*\\*": {"/static%3Apath/*/**": {}},
    "/**": {
        "/": {"_": ""},
        "/anything": {"_": "anything"},
        "/any/deep/path": {"_": "any/deep/path"},
    },
    "/path/:id(\\d+)": {"/path/123": {"id": "123"}},
    "/path/:ext(png|jpg|gif)": {"/path/png": {"ext": "png"}},
    "/path/:version(v\\d+)/:resource": {"/path/v2/users": {"version": "v2", "resource": "users"}},
    "/path/:id?": {"/path/123": {"id": "123"}, "/path": {}},
    "/path/:id(\\d+)?": {"/path/123": {"id": "123"}, "/path": {}},
    "/path/:rest+": {"/path/a/b": {"rest": "a/b"}, "/path/a": {"rest": "a"}},
    "/path/:rest*": {"/path/a/b": {"rest": "a/b"}, "/path": {}},
    "/path/(\\d+)": {"/path/123": {"0": "123"}},
    "/path/(png|jpg|gif)": {"/path/png": {"0": "png"}},
    "/path/:id(\\d+)+": {"/path/123": {"id": "123"}, "/path/123/456": {"id": "123/456"}},
    "/path/:id(\\d+)*": {"/path/123": {"id": "123"}, "/path": {}},
    "/book{s}?": {"/book": {}, "/books": {}},
    "/blog/:slug(\\d+\\.\\d+)": {"/blog/1.2": {"slug": "1.2"}},
    "/img/:name([a-z.]+)": {"/img/a.b.c": {"name": "a.b.c"}},
    "/blog/:id(\\d+){-:title}?": {
        "/blog/123": {"id": "123"},
        "/blog/123-my-post": {"id": "123", "title": "my-post"},
    },
    "/foo{/bar}?": {"/foo": {}, "/foo/bar": {}},
    "/api/:test-id": {"/api/abc": {"test-id": "abc"}},
    "/api/:test-id?": {"/api/abc": {"test-id": "abc"}, "/api": {}},
    "/api/**:test-id": {"/api/a/b": {"test-id": "a/b"}},
    "/files/:file-name.json": {"/files/readme.json": {"file-name": "readme"}},
    "/mix/:a-b.:a_b": {"/mix/x.y": {"a-b": "x", "a_b": "y"}},
    "/run/:a--b.:a_-b": {"/run/x.y": {"a--b": "x", "a_-b": "y"}},
    "/api/:0": {"/api/abc": {"0": "abc"}},
    "/media/*{.webp}?": {"/media/photo.webp": {"0": "photo"}, "/media/photo": {"0": "photo"}},
}

for _pattern, _matches in REGEXP_CASES.items():
    CASES[f"regexp: {_pattern}"] = (
        [_pattern],
        [("GET", path, (_pattern, params)) for path, params in _matches.items()],
    )

# --- where h3lab deliberately differs -----------------------------------------

# rou3 registers a duplicate (same method, same pattern up to param names) and
# answers with the first; h3lab refuses it at registration, so no route can be
# silently unreachable. (rou3's "duplicate route registrations" case.)
DUPLICATES = [
    ("GET /dup", "GET /dup"),
    ("GET /dup/:x", "GET /dup/:x"),
    ("GET /dup/:x(\\d+)/r", "GET /dup/:x(\\d+)/r"),
]

# rou3 patterns h3lab refuses: a regex constraint with a repeat modifier
# (rou3's tree drops the constraint and matches anything; only its
# routeToRegExp keeps it).
REFUSED = ["/path/:id(\\d+)+", "/path/:id(\\d+)*"]

# A rou3 lookup h3lab answers differently, with h3lab's answer and why.
DIFFERENCES: dict[tuple[str, str, str], tuple[Expected, str]] = {}


# --- running the cases ------------------------------------------------------

# hybrid is the trie behind an LRU: ("trie", "lru") would repeat it.
PLAIN_VARIANTS = router_variants()
VARIANTS = [*PLAIN_VARIANTS, ("linear", "lru"), ("compiled", "lfu")]


def variant_id(variant: tuple[str, str]) -> str:
    matching, policy = variant
    return matching if variant in PLAIN_VARIANTS else f"{matching}+{policy}"


def handler() -> None:
    """Never called: only matching is under test."""


def build(variant: tuple[str, str], specs: list[str]) -> tuple[Router, dict[int, str]]:
    router = build_router(variant[0], variant[1], 64)
    labels: dict[int, str] = {}
    for spec in specs:
        spec, _, label = spec.partition(" #")
        method, pattern = ("GET", spec) if spec.startswith("/") else spec.split(" ", 1)
        route = Route(method, pattern, handler)
        router.add(route)
        labels[id(route)] = label or pattern
    return router, labels


def answer(router: Router, labels: dict[int, str], method: str, raw: str) -> Any:
    found = router.match(method, routing_path(raw))
    return None if found is None else (labels[id(found[0])], found[1])


def agrees(got: Any, expected: Expected) -> bool:
    if expected is None or got is None:
        return got == expected
    label, params = expected
    return bool(got[0] == label and (params is None or got[1] == params))


def run_case(variant: tuple[str, str], name: str) -> list[tuple[str, str, Any, Expected]]:
    """The lookups of one case that disagree with rou3 (and with DIFFERENCES)."""
    specs, cases = CASES[name]
    router, labels = build(variant, specs)
    wrong = []
    for method, raw, expected in cases:
        expected = DIFFERENCES.get((name, method, raw), (expected, ""))[0]
        got = answer(router, labels, method, raw)
        if not agrees(got, expected):
            wrong.append((method, raw, got, expected))
    return wrong


SUPPORTED = [name for name in CASES if not any(p in REFUSED for p in CASES[name][0])]


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("name", SUPPORTED)
def test_rou3_case(variant: tuple[str, str], name: str) -> None:
    assert run_case(variant, name) == []


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@pytest.mark.parametrize(("first", "second"), DUPLICATES)
def test_rou3_duplicates_are_refused(variant: tuple[str, str], first: str, second: str) -> None:
    router, _ = build(variant, [first])
    with pytest.raises(ValueError, match="duplicate"):
        build_into(router, second)


def build_into(router: Router, spec: str) -> None:
    method, _, pattern = spec.partition(" ")
    router.add(Route(method, pattern, handler))


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("pattern", REFUSED)
def test_rou3_patterns_h3lab_refuses(variant: tuple[str, str], pattern: str) -> None:
    router = build_router(variant[0], variant[1], 64)
    with pytest.raises(ValueError) as raised:
        router.add(Route("GET", pattern, handler))
    assert repr(pattern) in str(raised.value)


def test_case_counts() -> None:
    """The numbers the README quotes: every translated lookup is accounted for."""
    lookups_total = sum(len(cases) for _, cases in CASES.values())
    refused = sum(len(CASES[name][1]) for name in CASES if name not in SUPPORTED)
    assert lookups_total == 270
    assert refused == 4
    assert len(DIFFERENCES) == 0  # every supported lookup answers as rou3
