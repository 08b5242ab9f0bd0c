"""Istio's Bookinfo sample as small aiohttp services: the local mesh's workloads.

    ingress --> productpage v1 --(3 s, 2 tries)--> reviews v1 (no ratings)
                       |                           reviews v2 --(10 s)--> ratings v1
                       '--(3 s)--> details v1      reviews v3 --(2.5 s)-> ratings v1

Each workload of the topology gets its own HTTP server on 127.0.0.1:<workload.port>, and makes
every call to another service through its own sidecar: ``http://127.0.0.1:<sidecar_port>/...``
with ``Host: <service>:9080``, which is what a pod's ``http://ratings:9080/...`` becomes once
iptables sends it to Envoy. Routing, faults, retries and circuit breaking are therefore the
sidecar's business, never this module's.

What is reproduced from Istio's sources (productpage.py, details.rb, LibertyRestEndpoint.java,
ratings.js), because Istio's tasks depend on it:

- productpage calls details (3 s timeout), then reviews (3 s timeout, tried twice whatever went
  wrong: the deliberate bug of the fault-injection task, 6 s in all), and renders a 200 page
  either way: "Error fetching product details!" / "Error fetching product reviews!" when a call
  fails, and each review's "Ratings service is currently unavailable" as reviews reports it.
- reviews v2 calls ratings with a 10 s timeout (black stars), v3 with 2.5 s (red stars), v1 not
  at all; a failed or slow ratings call becomes the ratings error object, never a failed review.
- the headers each service forwards: ``end-user`` (productpage sets it from the login), the
  tracing headers (x-request-id, x-b3-*, traceparent, ...), user-agent, cookie, authorization.
- response bodies and status codes, including ``"podname"`` and the reviews' string ``"id"``.
- the timeouts are connect and per-read timeouts, as requests' and JAX-RS's are, not totals.

Where it differs from the real Bookinfo:

- One Python process and event loop for every workload, in-memory data only: no ratings v2
  (database backed), no details external book service, no ``POST /ratings``, no flood factor,
  no static assets (the page has no Bootstrap styling).
- The login is a plain cookie ``user=<name>`` rather than Flask's signed session cookie; the
  ``end-user`` header sent downstream is the same. Login and logout redirect to the Referer as
  Bookinfo does, or to ``/`` (a cheap page) when there is none.
- b3 headers are forwarded as received; the real productpage re-emits them through an
  OpenTracing tracer, which also invents a trace when none comes in.
- Outbound calls reuse keep-alive connections (one client session per workload); the real
  services open a connection per call. Envoy's per-connection limits (``maxRequestsPerConnection``)
  therefore see more requests per connection here.
- ``podname`` is the workload's name (``reviews-v2``), without a ReplicaSet hash and pod id
  (the pods of a workload answer alike; Envoy's per-host stats tell them apart); ``clustername``
  is ``"null"``, which is what the Java service prints when CLUSTER_NAME is unset.
"""

from __future__ import annotations

import asyncio
import html
import json
import socket
import threading
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from chaosmesh_py.localmesh.topology import Ingress, Service, Topology, Workload

__all__ = [
    "PRODUCTPAGE_TIMEOUT_S",
    "SERVICE_PORT",
    "Bookinfo",
    "BookinfoThread",
    "bookinfo_topology",
    "run_bookinfo",
]

SERVICE_PORT = 9080
SERVICES = ("productpage", "details", "reviews", "ratings")
# (app, version) of each Deployment in bookinfo.yaml.
WORKLOADS = (
    ("productpage", "v1"),
    ("details", "v1"),
    ("reviews", "v1"),
    ("reviews", "v2"),
    ("reviews", "v3"),
    ("ratings", "v1"),
)

# productpage: requests.get(..., timeout=3.0) for each call, and two tries for reviews.
PRODUCTPAGE_TIMEOUT_S = 3.0
PRODUCTPAGE_REVIEWS_TRIES = 2
# reviews: star colour per version (v1 has ratings disabled) and the ratings timeout it implies.
REVIEWS_STAR_COLOR = {"v1": None, "v2": "black", "v3": "red"}
REVIEWS_RATINGS_TIMEOUT_S = {"black": 10.0, "red": 2.5}
# Lets the rare request still in flight at stop() finish; most are held by an injected delay.
STOP_GRACE_S = 0.5

RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"
DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
PRODUCT_RATINGS_UNAVAILABLE = "Sorry, product ratings are currently unavailable for this book."

# Headers productpage copies from its request to details and reviews (b3 ones included: we
# forward them instead of re-emitting them from a tracer). end-user comes from the login.
PRODUCTPAGE_FORWARDED = (
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
)
# reviews copies the same set to ratings, end-user included.
REVIEWS_FORWARDED = (*PRODUCTPAGE_FORWARDED, "end-user")

PRODUCTS: tuple[dict[str, Any], ...] = (
    {
        "id": 0,
        "title": "The Comedy of Errors",
        "descriptionHtml": (
            '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>:'
            " The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his"
            " shortest and one of his most farcical comedies, with a major part of the humour"
            " coming from slapstick and mistaken identity, in addition to puns and word play."
        ),
    },
)
REVIEWS = (
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other"
        " plays by Shakespeare.",
    ),
)
RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


def bookinfo_topology(
    ports: Iterator[int], namespace: str = "bookinfo", ingress_port: int | None = None
) -> Topology:
    """Bookinfo's Services and Deployments; each workload takes its app port, then its sidecar's."""
    services = tuple(Service(name, namespace, SERVICE_PORT, {"app": name}) for name in SERVICES)
    workloads = tuple(
        Workload(
            name=f"{app}-{version}",
            namespace=namespace,
            labels={"app": app, "version": version},
            port=next(ports),
            sidecar_port=next(ports),
        )
        for app, version in WORKLOADS
    )
    ingress = Ingress(port=ingress_port) if ingress_port is not None else None
    return Topology(services=services, workloads=workloads, ingress=ingress)


@dataclass(frozen=True)
class _Reply:
    """What came back from a call: ``status`` 0 when nothing did (timeout, refused, reset)."""

    status: int
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status == 200


class _Sidecar:
    """A workload's way out: every call goes to its sidecar, naming the service in Host."""

    def __init__(self, workload: Workload, topology: Topology, calls: tuple[str, ...]) -> None:
        self.workload = workload
        # Resolved now, so a topology lacking a service fails at construction, not per request.
        self._hosts = {name: self._host(topology, name) for name in calls}
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        # limit=0: no cap inside the app, so the sidecar's circuit breaker is the only limit
        # (the real services open a connection per call and have none either).
        connector = aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(
            base_url=f"http://127.0.0.1:{self.workload.sidecar_port}", connector=connector
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_json(
        self, service_name: str, path: str, headers: Mapping[str, str], timeout_s: float
    ) -> _Reply:
        """GET ``path`` from ``service_name``; a body that is not JSON counts as a failure."""
        if self._session is None:
            raise RuntimeError(f"{self.workload.name} is not started")
        # requests' timeout=3.0 and JAX-RS's connection/receive timeouts bound the connect and
        # each read, not the whole call; a delayed response sends nothing, so it is the same.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        try:
            async with self._session.get(
                path,
                headers={**headers, "Host": self._hosts[service_name]},
                timeout=timeout,
            ) as response:
                if response.status != 200:
                    return _Reply(response.status)
                return _Reply(200, json.loads(await response.read()))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return _Reply(0)

    def _host(self, topology: Topology, name: str) -> str:
        service = topology.service(name, self.workload.namespace)
        if service is None:
            raise ValueError(f"{self.workload.name} calls {name}, which the topology lacks")
        return f"{service.name}:{service.port}"


def _forwarded(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    return {name: request.headers[name] for name in names if name in request.headers}


def _product_id(request: web.Request) -> int | None:
    try:
        return int(request.match_info["product_id"])
    except ValueError:
        return None


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


# --- productpage -------------------------------------------------------------------------------


class _Productpage:
    def __init__(self, sidecar: _Sidecar, timeout_s: float) -> None:
        self.sidecar = sidecar
        self.timeout_s = timeout_s

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.index),
            web.get("/index.html", self.index),
            web.get("/health", self.health),
            web.post("/login", self.login),
            web.get("/logout", self.logout),
            web.get("/productpage", self.productpage),
            web.get("/api/v1/products", self.products),
            web.get("/api/v1/products/{product_id}", self.product),
            web.get("/api/v1/products/{product_id}/reviews", self.product_reviews),
            web.get("/api/v1/products/{product_id}/ratings", self.product_ratings),
        ]

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text=_render_index(), content_type="text/html")

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="Product page is healthy")

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        user = str(form.get("username") or request.query.get("username") or "")
        response = _back(request)
        if user:
            response.set_cookie("user", user)
        else:
            response.del_cookie("user")
        return response

    async def logout(self, request: web.Request) -> web.Response:
        response = _back(request)
        response.del_cookie("user")
        return response

    async def productpage(self, request: web.Request) -> web.Response:
        headers = self._headers(request)
        # Sequential, as in Bookinfo: a slow details delays the reviews call.
        details_status, details = await self._details("0", headers)
        reviews_status, reviews = await self._reviews("0", headers)
        page = _render_productpage(
            user=request.cookies.get("user", ""),
            product=PRODUCTS[0],
            details_status=details_status,
            details=details,
            reviews_status=reviews_status,
            reviews=reviews,
        )
        return web.Response(text=page, content_type="text/html")

    async def products(self, request: web.Request) -> web.Response:
        return _json(list(PRODUCTS))

    async def product(self, request: web.Request) -> web.Response:
        status, body = await self._details(request.match_info["product_id"], self._headers(request))
        return _json(body, status)

    async def product_reviews(self, request: web.Request) -> web.Response:
        status, body = await self._reviews(request.match_info["product_id"], self._headers(request))
        return _json(body, status)

    async def product_ratings(self, request: web.Request) -> web.Response:
        product_id = quote(request.match_info["product_id"], safe="")
        reply = await self.sidecar.get_json(
            "ratings", f"/ratings/{product_id}", self._headers(request), self.timeout_s
        )
        if reply.ok:
            return _json(reply.body)
        return _json({"error": PRODUCT_RATINGS_UNAVAILABLE}, reply.status or 500)

    def _headers(self, request: web.Request) -> dict[str, str]:
        headers = _forwarded(request, PRODUCTPAGE_FORWARDED)
        user = request.cookies.get("user")
        if user:
            headers["end-user"] = user
        return headers

    async def _details(self, product_id: str, headers: dict[str, str]) -> tuple[int, Any]:
        path = f"/details/{quote(product_id, safe='')}"
        reply = await self.sidecar.get_json("details", path, headers, self.timeout_s)
        if reply.ok:
            return 200, reply.body
        return reply.status or 500, {"error": DETAILS_UNAVAILABLE}

    async def _reviews(self, product_id: str, headers: dict[str, str]) -> tuple[int, Any]:
        path = f"/reviews/{quote(product_id, safe='')}"
        # Bookinfo's deliberate bug: a second try after any failure, timeouts included.
        reply = _Reply(0)
        for _ in range(PRODUCTPAGE_REVIEWS_TRIES):
            reply = await self.sidecar.get_json("reviews", path, headers, self.timeout_s)
            if reply.ok:
                return 200, reply.body
        return reply.status or 500, {"error": REVIEWS_UNAVAILABLE}


def _back(request: web.Request) -> web.Response:
    """Bookinfo's ``redirect(request.referrer)``; without a Referer, the cheap index page."""
    # A plain 302 response: aiohttp deprecates returning its HTTPFound exception.
    return web.Response(status=302, headers={"Location": request.headers.get("Referer") or "/"})


def _render_index() -> str:
    return (
        "<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>\n"
        "<h3>Hello! This is a simple bookstore application consisting of three services"
        " as shown below</h3>\n"
        "<p>productpage calls details, and reviews, which calls ratings.</p>\n"
        '<p><a href="productpage?u=normal">Normal user</a></p>\n'
        '<p><a href="productpage?u=test">Test user</a></p>\n'
        "</body></html>\n"
    )


def _render_productpage(
    *,
    user: str,
    product: Mapping[str, Any],
    details_status: int,
    details: Mapping[str, Any],
    reviews_status: int,
    reviews: Mapping[str, Any],
) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>"]
    parts.append('<nav><span class="navbar-brand">BookInfo Sample</span>')
    if user:
        parts.append(f'<p class="navbar-text">{esc(user)} ( <a href="logout">sign out</a> )</p>')
    else:
        parts.append(
            '<form method="post" action="login" name="login_form">'
            '<input type="text" name="username" placeholder="User Name">'
            '<input type="password" name="passwd" placeholder="Password">'
            '<button type="submit">Sign in</button></form>'
        )
    parts.append("</nav>")
    # descriptionHtml is trusted HTML in Bookinfo's template too (autoescape false).
    parts.append(f"<h3>{esc(product['title'])}</h3><p>Summary: {product['descriptionHtml']}</p>")

    if details_status == 200:
        parts.append("<h4>Book Details</h4><dl>")
        for label, key in (
            ("Type", "type"),
            ("Pages", "pages"),
            ("Publisher", "publisher"),
            ("Language", "language"),
            ("ISBN-10", "ISBN-10"),
            ("ISBN-13", "ISBN-13"),
        ):
            parts.append(f"<dt>{label}:</dt><dd>{esc(str(details.get(key, '')))}</dd>")
        parts.append("</dl>")
    else:
        parts.append(f"<h4>Error fetching product details!</h4><p>{esc(details['error'])}</p>")

    if reviews_status == 200:
        parts.append("<h4>Book Reviews</h4>")
        for review in reviews.get("reviews", []):
            parts.append(
                f"<blockquote><p>{esc(str(review.get('text', '')))}</p>"
                f"<small>{esc(str(review.get('reviewer', '')))}</small>"
            )
            rating = review.get("rating") or {}
            if rating.get("stars"):
                stars = int(rating["stars"])
                parts.append(f'<font color="{esc(str(rating.get("color", "")))}">')
                parts.append('<span class="glyphicon glyphicon-star"></span>' * stars)
                parts.append('<span class="glyphicon glyphicon-star-empty"></span>' * (5 - stars))
                parts.append("</font>")
            elif rating.get("error"):
                parts.append(f"<p><i>{esc(str(rating['error']))}</i></p>")
            parts.append("</blockquote>")
    else:
        parts.append(f"<h4>Error fetching product reviews!</h4><p>{esc(reviews['error'])}</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --- details -----------------------------------------------------------------------------------


async def _details_health(request: web.Request) -> web.Response:
    return _json({"status": "Details is healthy"})


async def _details(request: web.Request) -> web.Response:
    product_id = _product_id(request)
    if product_id is None:
        return _json({"error": "please provide numeric product id"}, 400)
    return _json(
        {
            "id": product_id,
            "author": "William Shakespeare",
            "year": 1595,
            "type": "paperback",
            "pages": 200,
            "publisher": "PublisherA",
            "language": "English",
            "ISBN-10": "1234567890",
            "ISBN-13": "123-1234567890",
        }
    )


# --- reviews -----------------------------------------------------------------------------------


class _Reviews:
    def __init__(self, workload: Workload, sidecar: _Sidecar | None, star_color: str | None):
        self.workload = workload
        self.sidecar = sidecar  # None for v1, which has ratings disabled
        self.star_color = star_color

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/health", self.health), web.get("/reviews/{product_id}", self.reviews)]

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "Reviews is healthy"})

    async def reviews(self, request: web.Request) -> web.Response:
        product_id = _product_id(request)
        if product_id is None:
            # JAX-RS answers 404 when an int path parameter does not convert.
            raise web.HTTPNotFound()
        stars: Mapping[str, Any] = {}
        if self.sidecar is not None and self.star_color is not None:
            reply = await self.sidecar.get_json(
                "ratings",
                f"/ratings/{product_id}",
                _forwarded(request, REVIEWS_FORWARDED),
                REVIEWS_RATINGS_TIMEOUT_S[self.star_color],
            )
            if reply.ok and isinstance(reply.body, dict):
                stars = reply.body.get("ratings") or {}
        reviews = []
        for reviewer, text in REVIEWS:
            review: dict[str, Any] = {"reviewer": reviewer, "text": text}
            if self.star_color is not None:
                given = stars.get(reviewer)
                review["rating"] = (
                    {"stars": given, "color": self.star_color}
                    if isinstance(given, int)
                    else {"error": RATINGS_UNAVAILABLE}
                )
            reviews.append(review)
        # The Java service prints the id as a string and an unset CLUSTER_NAME as "null".
        return _json(
            {
                "id": str(product_id),
                "podname": self.workload.name,
                "clustername": "null",
                "reviews": reviews,
            }
        )


# --- ratings -----------------------------------------------------------------------------------


async def _ratings_health(request: web.Request) -> web.Response:
    return _json({"status": "Ratings is healthy"})


async def _ratings(request: web.Request) -> web.Response:
    product_id = _product_id(request)
    if product_id is None:
        return _json({"error": "please provide numeric product ID"}, 400)
    return _json({"id": product_id, "ratings": RATINGS})


# --- the whole application ---------------------------------------------------------------------


class Bookinfo:
    """Every Bookinfo workload of ``topology``, each serving on 127.0.0.1:<workload.port>.

    Workloads of other apps are left alone (something else serves them); a Bookinfo app in a
    version this module does not have (ratings v2) is an error. ``productpage_timeout_s``
    replaces Bookinfo's 3 s for tests that cannot wait 6 s; everything else is Bookinfo's.
    ``start()`` returns once every workload listens, or raises (a port in use) having undone
    what it started; ``stop()`` is prompt even while faults hold calls. Also ``async with``.

    Pods come and go while it runs (the local mesh's deployment controller): ``add`` starts one
    more workload instance, ``remove`` stops one as a killed pod stops, its port closed and its
    calls in flight failed.
    """

    def __init__(
        self, topology: Topology, *, productpage_timeout_s: float = PRODUCTPAGE_TIMEOUT_S
    ) -> None:
        self.topology = topology
        self._productpage_timeout_s = productpage_timeout_s
        self._running: dict[tuple[str, str], _Instance] = {}
        # Built now, so a workload Bookinfo lacks fails at construction, not at start.
        self._declared = [
            instance for instance in map(self._instance, topology.workloads) if instance is not None
        ]

    @staticmethod
    def has(labels: Mapping[str, str]) -> bool:
        """Is this one of Bookinfo's workloads (by its ``app`` and ``version`` labels)?"""
        return (labels.get("app"), labels.get("version")) in WORKLOADS

    def _instance(self, workload: Workload) -> _Instance | None:
        name, version = workload.labels.get("app"), workload.labels.get("version")
        if name not in SERVICES:
            return None
        instance = _Instance(workload, web.Application())
        app = instance.app
        if (name, version) == ("productpage", "v1"):
            sidecar = instance.sidecar(self.topology, ("details", "reviews", "ratings"))
            app.add_routes(_Productpage(sidecar, self._productpage_timeout_s).routes())
        elif (name, version) == ("details", "v1"):
            app.add_routes(
                [web.get("/health", _details_health), web.get("/details/{product_id}", _details)]
            )
        elif name == "reviews" and version in REVIEWS_STAR_COLOR:
            color = REVIEWS_STAR_COLOR[version]
            to_ratings = instance.sidecar(self.topology, ("ratings",)) if color else None
            app.add_routes(_Reviews(workload, to_ratings, color).routes())
        elif (name, version) == ("ratings", "v1"):
            app.add_routes(
                [web.get("/health", _ratings_health), web.get("/ratings/{product_id}", _ratings)]
            )
        else:
            raise ValueError(f"workload {workload.name}: Bookinfo has no {name} {version}")
        return instance

    async def start(self) -> None:
        try:
            for instance in self._declared:
                await self._start(instance)
        except BaseException:
            await self.stop()
            raise

    async def add(self, workload: Workload) -> None:
        """Serve ``workload`` (one pod) on its port; a workload of another app is ignored."""
        instance = self._instance(workload)
        if instance is not None:
            await self._start(instance)

    async def _start(self, instance: _Instance) -> None:
        key = (instance.workload.namespace, instance.workload.instance)
        if key in self._running:
            raise ValueError(f"{instance.workload.instance} is running already")
        await instance.start()
        self._running[key] = instance

    async def remove(self, workload: Workload) -> None:
        """Stop serving ``workload``'s pod (nothing if it does not run)."""
        instance = self._running.pop((workload.namespace, workload.instance), None)
        if instance is not None:
            await instance.stop()

    async def stop(self) -> None:
        while self._running:
            await self._running.popitem()[1].stop()

    async def __aenter__(self) -> Bookinfo:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class _Instance:
    """One running workload instance (a pod): its server and its ways out."""

    def __init__(self, workload: Workload, app: web.Application) -> None:
        self.workload = workload
        self.app = app
        self._sidecars: list[_Sidecar] = []
        self._runner: web.AppRunner | None = None
        self._listener: socket.socket | None = None

    def sidecar(self, topology: Topology, calls: tuple[str, ...]) -> _Sidecar:
        sidecar = _Sidecar(self.workload, topology, calls)
        self._sidecars.append(sidecar)
        return sidecar

    async def start(self) -> None:
        try:
            for sidecar in self._sidecars:
                await sidecar.open()
            # access_log=None: the sidecar's access log is the one that matters.
            self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=STOP_GRACE_S)
            await self._runner.setup()
            # Our own listening socket (what TCPSite would bind: SO_REUSEADDR on POSIX), so
            # stop() can stop accepting before the server closes (see there).
            self._listener = socket.create_server(("127.0.0.1", self.workload.port))
            # aiohttp sets TCP_NODELAY on every connection, so no 40 ms Nagle stalls.
            await web.SockSite(self._runner, self._listener).start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        # Client sessions first: calls held by an injected delay fail at once, so their
        # handlers finish and the server need not wait out the grace period.
        for sidecar in self._sidecars:
            await sidecar.close()
        if self._runner is not None:
            if self._listener is not None:
                await self._stop_accepting(self._listener)
            await self._runner.cleanup()
            self._runner = None
        if self._listener is not None:
            # Closed by the server already, unless start() failed before serving on it.
            self._listener.close()
            self._listener = None

    async def _stop_accepting(self, listener: socket.socket) -> None:
        """Close the port, then cut the open connections (Envoy's keep-alive ones too), as a
        killed pod's are: left to the graceful shutdown, an idle one outlives the server.

        Closing asyncio's server at once is not safe: the stdlib loop accepts a connection in
        one callback and builds its transport in a task run a loop turn later, and that
        transport's ``Server._attach()`` asserts the server is still open. On a close in
        between, the AssertionError is swallowed (logged in debug mode only) and the accepted
        socket is left to the garbage collector: "unclosed transport" ResourceWarnings at any
        later point (CPython 3.11's selector loop; seen in tests/local/test_pods.py). So: stop
        accepting (``remove_reader`` also cancels an accept already due this turn), let the
        tasks of the connections accepted so far build their transports, then close. One
        turn is enough, not a guess: the loop runs callbacks in the order they were scheduled,
        and those tasks were scheduled before this task's next step.
        """
        assert self._runner is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(listener.fileno())
        await asyncio.sleep(0)
        for site in list(self._runner.sites):
            await site.stop()
        # Each new transport hands itself to aiohttp's handler a turn later (connection_made,
        # scheduled as it was built): then every connection is in server.connections.
        await asyncio.sleep(0)
        server = self._runner.server
        for handler in list(server.connections) if server is not None else ():
            if handler.transport is not None:
                handler.transport.abort()


class BookinfoThread:
    """Bookinfo on its own event loop in a daemon thread, for callers that are not asyncio.

    ``run_bookinfo`` returns one already started: ``start()`` returns once every workload
    listens, or raises what stopped it (a port in use); ``stop()`` stops the servers and ends
    the thread, and may be called more than once. Usable as a context manager.
    """

    def __init__(
        self, topology: Topology, *, productpage_timeout_s: float = PRODUCTPAGE_TIMEOUT_S
    ) -> None:
        self.bookinfo = Bookinfo(topology, productpage_timeout_s=productpage_timeout_s)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve()), name="bookinfo", daemon=True
        )
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"Bookinfo did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout_s)

    def add(self, workload: Workload, timeout_s: float = 10.0) -> None:
        """``Bookinfo.add`` from another thread: returns once the pod listens, or raises."""
        self._run(self.bookinfo.add(workload), timeout_s)

    def remove(self, workload: Workload, timeout_s: float = 10.0) -> None:
        """``Bookinfo.remove`` from another thread: returns once the pod's port is closed."""
        self._run(self.bookinfo.remove(workload), timeout_s)

    def _run(self, work: Coroutine[Any, Any, None], timeout_s: float) -> None:
        if self._loop is None or not self._thread.is_alive():
            work.close()
            raise RuntimeError("Bookinfo is not running")
        asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout_s)

    async def _serve(self) -> None:
        # asyncio.run then cancels what is left (a handler whose caller went away keeps
        # running in aiohttp) and closes the loop.
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self.bookinfo.start()
        except BaseException as error:
            self._error = error
            return
        finally:
            self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self.bookinfo.stop()

    def __enter__(self) -> BookinfoThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_bookinfo(
    topology: Topology, *, productpage_timeout_s: float = PRODUCTPAGE_TIMEOUT_S
) -> BookinfoThread:
    """Start Bookinfo in a background thread; call ``.stop()`` on the result to end it."""
    handle = BookinfoThread(topology, productpage_timeout_s=productpage_timeout_s)
    handle.start()
    return handle
