"""The review page of `tradewatch ui`: analysts confirm or dismiss the champion's flags.

A small FastAPI app on 127.0.0.1 over flows.review (the queue, a trade's context, the label
store), one more server of `tradewatch ui`:

    /                  the queue: unreviewed flags, highest score first, with cluster sizes
    /trade?id=ID       one flag: its price chart, the features that drove its score, its cluster,
                       and the confirm / dismiss form (for the trade or its whole cluster)
    POST /decide       records the decision; a refused one shows its one-line error, writes nothing
    /decisions         the reviewer's recent decisions, read from the label store
    /health            "ok", for `tradewatch ui` to know the server is up

Pages are Jinja2 templates (autoescaped: trade ids and reasons are user input) with the
stylesheet of the other HTML pages; the chart is inline SVG (flows.review_chart): nothing is
loaded from the network. The reviewer's name is a form field remembered in a cookie, by default
`TRADEWATCH_REVIEWER` or the OS user. Forms carry a token of this server's process, and only
the Host names of this machine are served, so another site open in the same browser cannot
post decisions (cross-site request forgery) or read the pages (DNS rebinding).

Run by `tradewatch ui`, or alone: `python -m flows.review_page --port 8090`.
"""

from __future__ import annotations

import argparse
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from core.html import CSS
from flows import review
from flows.config import Settings
from flows.review_chart import BarRange, PricePoint, price_chart
from ml.review import REVIEW_KINDS, ReviewError, reviewer_name

HOST = "127.0.0.1"
DEFAULT_PORT = 8090
#: Environment variable holding the settings a `tradewatch ui` child serves (JSON).
SETTINGS_ENV = "TRADEWATCH_UI_SETTINGS"
REVIEWER_COOKIE = "tradewatch_reviewer"
COOKIE_SECONDS = 365 * 86400
QUEUE_LIMIT = 100
RECENT_DECISIONS = 50
TEMPLATES = Path(__file__).resolve().parent / "templates" / "review"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(key): value for key, value in row.items()} for row in frame.to_dict("records")]


def create_app(settings: Settings) -> FastAPI:
    """The review app for one data home."""
    app = FastAPI(title="Tradewatch review", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=[HOST, "localhost"])
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals.update(css=CSS, kinds=REVIEW_KINDS)
    token = secrets.token_urlsafe(24)

    def reviewer_of(request: Request) -> str:
        return reviewer_name(request.cookies.get(REVIEWER_COOKIE))

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.setdefault("reviewer", reviewer_of(request))
        return templates.TemplateResponse(request, name, {"token": token, **context},
                                          status_code=status_code)

    @app.get("/health", response_class=PlainTextResponse)
    def health() -> str:
        return "ok"

    @app.get("/", response_class=HTMLResponse)
    def queue(request: Request, symbol: str = "", decided: int = 0) -> Response:
        items: list[review.QueueItem] = []
        problem = None
        try:
            items = review.review_queue(settings, limit=QUEUE_LIMIT,
                                        symbol=symbol.strip().upper() or None)
        except ReviewError as exc:  # no analysts' database yet, say
            problem = str(exc)
        return render(request, "queue.html", items=items, symbol=symbol, problem=problem,
                      decided=decided)

    def trade_page(request: Request, trade_id: str, *, error: str | None = None,
                   form: dict[str, str] | None = None, status_code: int = 200) -> Response:
        try:
            context = review.trade_context(settings, trade_id)
        except ReviewError as exc:
            return render(request, "trade.html", status_code=404, trade_id=trade_id,
                          problem=str(exc), error=error, form=form or {})
        return render(request, "trade.html", status_code=status_code, trade_id=trade_id,
                      problem=None, context=context, chart=chart_of(context),
                      window_minutes=f"{settings.review.context_minutes:g}",
                      cluster=cluster_rows(context), error=error, form=form or {})

    @app.get("/trade", response_class=HTMLResponse)
    def trade(request: Request, id: str) -> Response:  # noqa: A002 - the query parameter
        return trade_page(request, id)

    @app.post("/decide")
    def decide(
        request: Request,
        trade_id: str = Form(...),
        action: str = Form(...),
        csrf: str = Form(""),
        scope: str = Form("trade"),
        kind: str = Form(""),
        reason: str = Form(""),
        reviewer: str = Form(""),
        cluster_ids: str = Form(""),
    ) -> Response:
        if not hmac.compare_digest(csrf, token):
            return PlainTextResponse("refused: this form did not come from this review page "
                                     "(reload the page and submit again)", status_code=403)
        form = {"action": action, "scope": scope, "kind": kind, "reason": reason,
                "reviewer": reviewer}
        who = reviewer_name(reviewer or request.cookies.get(REVIEWER_COOKIE))
        ids = [trade_id]
        if scope == "cluster":
            ids = [*dict.fromkeys([trade_id, *cluster_ids.split()])]
        error = None
        try:
            if action not in ("confirm", "dismiss"):
                raise ReviewError(f"unknown action {action!r}: confirm or dismiss")
            confirm = action == "confirm"
            # A kind typed before choosing Dismiss is not part of a dismissal.
            review.record_decisions(settings, ids, confirm=confirm,
                                    kind=(kind.strip() or None) if confirm else None,
                                    reason=reason, reviewer=who)
        except ReviewError as exc:
            error = str(exc)
        response = (trade_page(request, trade_id, error=error, form=form, status_code=400)
                    if error else RedirectResponse(f"/?decided={len(ids)}", status_code=303))
        response.set_cookie(REVIEWER_COOKIE, who, max_age=COOKIE_SECONDS, httponly=True,
                            samesite="strict")
        return response

    @app.get("/decisions", response_class=HTMLResponse)
    def decisions(request: Request, reviewer: str = "") -> Response:
        who = reviewer.strip() or reviewer_of(request)
        try:
            store = review.read_label_store(settings)
        except ReviewError as exc:  # a volume that cannot be reached, say
            return render(request, "decisions.html", status_code=503, rows=[], who=who,
                          rejected=(), problem=str(exc))
        mine = store.decisions
        if not mine.empty:
            mine = mine.loc[mine["reviewer"] == who].iloc[::-1].head(RECENT_DECISIONS)
        return render(request, "decisions.html", rows=_records(mine), who=who,
                      rejected=store.rejected, problem=None)

    @app.post("/reviewer")
    def set_reviewer(csrf: str = Form(""), reviewer: str = Form(""),
                     back: str = Form("/")) -> Response:
        if not hmac.compare_digest(csrf, token):
            return PlainTextResponse("refused: reload the page and submit again",
                                     status_code=403)
        # Back to a page of this app only, never elsewhere.
        target = back if back.startswith("/") and not back.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        if reviewer.strip():
            response.set_cookie(REVIEWER_COOKIE, reviewer.strip(), max_age=COOKIE_SECONDS,
                                httponly=True, samesite="strict")
        return response

    return app


def cluster_rows(context: review.TradeContext) -> list[dict[str, Any]]:
    """The flags of the trade's cluster, as rows of the window's trades (time, price, score)."""
    members = set(context.cluster)
    trades = context.trades
    if trades.empty:
        return [{"trade_id": trade_id} for trade_id in context.cluster]
    return _records(trades.loc[trades["trade_id"].isin(members)])


def chart_of(context: review.TradeContext) -> str:
    """The price chart of the trade in its window (flows.review_chart)."""
    trades, bars = context.trades, context.bars
    points = [PricePoint(str(trade_id), pd.Timestamp(ts).to_pydatetime(), float(price))
              for trade_id, ts, price in zip(trades["trade_id"].tolist(),
                                             trades["trade_ts"].tolist(),
                                             trades["price"].tolist(), strict=True)]
    ranges = [BarRange(pd.Timestamp(minute).to_pydatetime(), float(low), float(high))
              for minute, low, high in zip(bars["bar_minute"].tolist(), bars["low"].tolist(),
                                           bars["high"].tolist(), strict=True)
              if not pd.isna(low)]
    return price_chart(points, trade_id=context.trade_id, cluster_ids=context.cluster, bars=ranges,
                       title=f"{context.symbol} around trade {context.trade_id}")


def settings_from_environment() -> Settings:
    """The settings a `tradewatch ui` child serves (passed whole), else project_config.yml."""
    from flows.config import load_settings

    passed = os.environ.get(SETTINGS_ENV)
    return Settings.model_validate_json(passed) if passed else load_settings()


def main(argv: list[str] | None = None) -> int:
    """Serve the review app on 127.0.0.1 until stopped."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m flows.review_page",
                                     description="The Tradewatch review page on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to serve on")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(settings_from_environment()), host=HOST, port=args.port,
                log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
