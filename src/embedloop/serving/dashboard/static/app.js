/* embedloop dashboard. Plain JavaScript, no build step.
 *
 * Every page only renders what the server's JSON API returns. All text from the
 * API goes into the page through textContent / DOM nodes (never innerHTML), so a
 * query or an item text such as "<script>" is always shown as text.
 * Admin actions send the admin token kept in sessionStorage as a bearer header.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "embedloop.adminToken";
  var ROOT = location.pathname.split("/dashboard")[0];
  var PRIMARY = "triplet_accuracy";
  var GUARD = "retrieval_ndcg@10";
  var app = document.getElementById("app");
  var timer = null;
  var mounted = [];

  // ------------------------------------------------------------------ helpers
  /** el("td", {class: "num"}, "text", childNode, ...): a DOM element; strings become text nodes. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "onclick" || key === "onchange") node[key] = value;
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; } }

  /** fetch JSON; resolves to {ok, status, data}. */
  function api(path, options) {
    options = options || {};
    var headers = { "Accept": "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (token()) headers["Authorization"] = "Bearer " + token();
    return fetch(ROOT + path, {
      method: options.method || "GET",
      headers: headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: { message: text } }; }
        return { ok: response.ok, status: response.status, data: data };
      });
    }, function (err) {
      return { ok: false, status: 0, data: { error: { message: "The server did not answer: " + err } } };
    });
  }
  function errorText(res) {
    var e = res.data && res.data.error;
    return (e && e.message) ? e.message : "HTTP " + res.status;
  }
  function need(res, what) {
    if (!res.ok) throw new Error(what + " failed: " + errorText(res));
    return res.data;
  }

  function flash(kind, message) {
    var box = document.getElementById("flash");
    box.className = "flash " + kind;
    box.textContent = message;
    box.hidden = false;
  }

  function fmtNum(value, digits) {
    if (value === null || value === undefined || (typeof value === "number" && isNaN(value))) return "–";
    if (typeof value !== "number") return String(value);
    if (digits !== undefined) return value.toFixed(digits);
    return value.toLocaleString("en-US");
  }
  function fmtPct(value) { return value === null || value === undefined ? "–" : (100 * value).toFixed(1) + " %"; }
  function fmtTime(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toISOString().replace("T", " ").slice(0, 16);
  }
  function fmtSeconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 90) return s.toFixed(1) + " s";
    return (s / 60).toFixed(1) + " min";
  }
  function badge(status) { return el("span", { class: "badge " + String(status || "").replace(/[^a-z_-]/gi, "") }, status || "–"); }
  function card(label, value, note, field, small) {
    return el("div", { class: "card" },
      el("div", { class: "label" }, label),
      el("div", { class: "value" + (small ? " small" : ""), "data-field": field }, value),
      note ? el("div", { class: "note" }, note) : null);
  }
  function panel(title, body, extra) {
    return el("section", { class: "panel" }, el("div", { class: "panel-head" }, el("h2", null, title), extra || null), body);
  }
  function table(headers, rows, numeric) {
    numeric = numeric || [];
    return el("table", null,
      el("thead", null, el("tr", null, headers.map(function (h, i) {
        return el("th", { class: numeric.indexOf(i) >= 0 ? "num" : null }, h);
      }))),
      el("tbody", null, rows));
  }
  function empty(text) { return el("div", { class: "empty" }, text); }
  function reasonsList(reasons) {
    if (!reasons || !reasons.length) return el("span", { class: "muted" }, "–");
    return el("ul", { class: "reasons" }, reasons.map(function (r) { return el("li", null, r); }));
  }
  function metricPair(metrics, key) {
    if (!metrics || !metrics.candidate) return "–";
    var a = metrics.active ? metrics.active[key] : null, c = metrics.candidate[key];
    return fmtNum(a, 3) + " → " + fmtNum(c, 3);
  }
  function stamp() {
    document.getElementById("updated").textContent = "Updated " + fmtTime(new Date().toISOString()) + " UTC";
  }

  // ---------------------------------------------------------------- the token
  function renderAuth() {
    var box = document.getElementById("auth");
    clear(box);
    if (token()) {
      append(box, [el("span", { class: "badge", "data-field": "auth-state" }, "admin"),
        el("button", { id: "forget-token", onclick: function () {
          sessionStorage.removeItem(TOKEN_KEY); renderAuth(); flash("ok", "Admin token forgotten: read-only.");
        } }, "Forget token")]);
      return;
    }
    var input = el("input", { id: "token-input", type: "password", placeholder: "Admin token", autocomplete: "off", "aria-label": "Admin token" });
    var save = function () {
      if (!input.value) return;
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      renderAuth();
      flash("ok", "Admin token kept for this browser tab; admin actions are enabled.");
    };
    input.onkeydown = function (e) { if (e.key === "Enter") save(); };
    append(box, [el("span", { "data-field": "auth-state" }, "read-only"), input, el("button", { id: "token-save", onclick: save }, "Use")]);
  }

  // -------------------------------------------------------------- the charts
  function lineChart(container, title, xs, series, opts) {
    mounted.push(function () { drawChart(container, title, xs, series, opts); });
  }
  function drawChart(container, title, xs, series, opts) {
    opts = opts || {};
    if (typeof uPlot === "undefined" || !xs.length) return;
    var palette = ["#2f5fd0", "#e07b39", "#1d7f4e", "#9b51e0", "#b42e2e"];
    var width = Math.max(320, container.clientWidth || 560);
    var config = {
      title: title,
      width: width,
      height: opts.height || 240,
      scales: { x: { time: !!opts.time }, y: { range: opts.yRange || function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [{ stroke: "#687083", grid: { stroke: "#eef0f3" } }, { stroke: "#687083", grid: { stroke: "#eef0f3" }, size: 52 }],
      legend: { live: false },
      series: [{ label: opts.xLabel || "x" }].concat(series.map(function (s, i) {
        var color = s.color || palette[i % palette.length];
        var out = { label: s.label, stroke: color, width: 2, points: { show: xs.length < 60 } };
        if (s.scale) out.scale = s.scale;
        if (s.dash) out.dash = s.dash;
        if (s.fill) out.fill = s.fill;
        if (s.bars) { out.paths = uPlot.paths.bars({ size: [0.7, 40] }); out.width = 0; out.points = { show: false }; }
        return out;
      })),
    };
    if (opts.secondAxis) {
      config.axes.push({ scale: opts.secondAxis, side: 1, stroke: "#687083", grid: { show: false }, size: 52 });
      config.scales[opts.secondAxis] = { range: [0, 1] };
    }
    new uPlot(config, [xs].concat(series.map(function (s) { return s.values; })), container);
  }

  // -------------------------------------------------------------- the pages
  var pages = {};

  pages.overview = function () {
    return Promise.all([api("/status"), api("/models")]).then(function (res) {
      var status = need(res[0], "GET /status"), models = need(res[1], "GET /models");
      var active = (models.versions || []).filter(function (v) { return v.active; })[0] || {};
      var count = status.feedback_count, threshold = status.threshold;
      var lock = status.training_lock;
      var trial = status.trial;
      var share = threshold ? Math.min(1, count / threshold) : 0;
      var feedbackCard = card("Feedback since last cycle", fmtNum(count) + " / " + fmtNum(threshold),
        status.should_fine_tune ? "Threshold reached: the next check fine-tunes." : "Selections until the next cycle: " + fmtNum(Math.max(0, threshold - count)) + ".",
        "feedback_count");
      append(feedbackCard, el("div", { class: "progress" }, el("div", { style: null, "data-share": share.toFixed(3) })));
      var last = status.last_run;
      append(app, [
        el("h1", null, "Overview"),
        el("p", { class: "subtitle" }, "What is live, whether feedback is flowing, and what runs next."),
        el("div", { class: "grid" }, [
          card("Active version", "v" + status.active_version, status.current_model, "active_version"),
          card("Base model", status.base_model || "–", "Version 0 is the base model itself.", "base_model", true),
          card("Mode", active.mode || (active.kind === "base" ? "base" : "full"), "How the active version was trained.", "mode", true),
          feedbackCard,
          card("Next scheduled check", status.next_scheduled_check ? fmtTime(status.next_scheduled_check) + " UTC" : "no scheduler",
            "Checks every " + fmtNum(status.check_interval_seconds) + " s.", "next_check", true),
          card("Training lock", lock ? lock.owner : "free", lock ? "lease until " + fmtTime(lock.expires_at) + " UTC" : "No cycle is running.", "lock", true),
          card("Trial", trial ? "v" + trial.candidate_version + " on trial" : "no trial running",
            trial ? "wins " + fmtNum(trial.wins) + " · losses " + fmtNum(trial.losses) + " · ties " + fmtNum(trial.ties) : null, "trial", true),
          card("Total feedback", fmtNum(status.total_feedback), fmtNum(status.items) + " catalog items", "total_feedback"),
        ]),
        panel("Last cycle", last ? el("dl", { class: "kv" }, [
          el("dt", null, "Run"), el("dd", { "data-field": "last_run_id" }, "#" + last.id + " · started " + fmtTime(last.started_at) + " UTC"),
          el("dt", null, "Outcome"), el("dd", null, badge(last.status), last.version !== null && last.version !== undefined ? " v" + last.version : ""),
          el("dt", null, "Feedback window"), el("dd", null, "events " + last.feedback_from_seq + "–" + last.feedback_to_seq),
          el("dt", null, "Reasons"), el("dd", null, reasonsList(last.reasons)),
        ]) : empty("No fine-tuning cycle has run yet.")),
      ]);
      // the progress bar's width is set through the CSSOM (no inline style attribute: CSP)
      var bar = app.querySelector("[data-share]");
      if (bar) bar.style.width = (100 * share).toFixed(1) + "%";
    });
  };

  function rollbackButton(version) {
    var armed = false;
    var button = el("button", { class: "danger", "data-action": "rollback", "data-version": version.version });
    button.textContent = "Roll back to v" + version.version;
    button.onclick = function () {
      if (!armed) {
        armed = true;
        button.classList.add("confirm");
        button.textContent = "Confirm rollback to v" + version.version;
        return;
      }
      button.disabled = true;
      api("/models/rollback", { method: "POST", body: { version: version.version } }).then(function (res) {
        if (res.ok) {
          flash("ok", "Rolled back: v" + version.version + " is active.");
          render();
        } else {
          var hint = (res.status === 401 || res.status === 403) ? " Enter the admin token in the top bar." : "";
          flash("error", "Rollback refused (" + res.status + "): " + errorText(res) + hint);
          armed = false;
          button.disabled = false;
          button.classList.remove("confirm");
          button.textContent = "Roll back to v" + version.version;
        }
      });
    };
    return button;
  }

  pages.versions = function () {
    return api("/models").then(function (res) {
      var data = need(res, "GET /models");
      var versions = data.versions || [];
      var rows = versions.map(function (v) {
        var window_ = v.feedback_window ? "events " + v.feedback_window.from_seq + "–" + v.feedback_window.to_seq : "–";
        var canRoll = !v.active && (v.status === "retired" || v.status === "active");
        return el("tr", { class: v.active ? "is-active" : null, "data-version": v.version }, [
          el("td", { class: "num" }, el("strong", null, "v" + v.version)),
          el("td", null, badge(v.active ? "active" : v.status)),
          el("td", { class: "num" }, v.parent === null || v.parent === undefined ? "–" : "v" + v.parent),
          el("td", null, v.kind === "base" ? "base" : (v.mode || "full")),
          el("td", { class: "mono" }, fmtTime(v.created)),
          el("td", { class: "mono" }, window_),
          el("td", { class: "num", "data-field": "primary" }, metricPair(v.metrics, PRIMARY)),
          el("td", { class: "num" }, metricPair(v.metrics, GUARD)),
          el("td", null, reasonsList(v.reasons)),
          el("td", null, canRoll ? rollbackButton(v) : (v.active ? el("span", { class: "muted" }, "live") : null)),
        ]);
      });
      append(app, [
        el("h1", null, "Model versions"),
        el("p", { class: "subtitle" }, [versions.length + " kept versions, newest first; v" + data.active_version + " is active. ",
          "Metrics are the gate's held-out figures: active model → candidate."]),
        panel("Timeline", versions.length ? table(
          ["Version", "Status", "Parent", "Mode", "Created (UTC)", "Feedback", "Triplet acc.", "NDCG@10", "Reasons", ""], rows, [0, 2, 6, 7])
          : empty("No versions.")),
      ]);
    });
  };

  var cyclesOffset = 0;
  var PAGE = 20;
  pages.cycles = function () {
    return Promise.all([api("/runs?limit=" + PAGE + "&offset=" + cyclesOffset), api("/runs?limit=500")]).then(function (res) {
      var page = need(res[0], "GET /runs"), all = need(res[1], "GET /runs").runs.slice().reverse();
      var evaluated = all.filter(function (r) { return r.metrics && r.metrics.candidate; });
      var chartBox = el("div", { class: "chart", id: "chart-metrics" });
      var timeBox = el("div", { class: "chart", id: "chart-timings" });
      var rows = page.runs.map(function (r) {
        var t = r.timings || {};
        return el("tr", { "data-run": r.id }, [
          el("td", { class: "num" }, "#" + r.id),
          el("td", { class: "mono" }, fmtTime(r.started_at)),
          el("td", null, badge(r.status)),
          el("td", { class: "num" }, (r.parent_version !== null ? "v" + r.parent_version : "–") + " → " + (r.version !== null && r.version !== undefined ? "v" + r.version : "–")),
          el("td", { class: "mono" }, r.feedback_from_seq + "–" + r.feedback_to_seq),
          el("td", { class: "num" }, fmtNum(r.train_size) + " / " + fmtNum(r.holdout_size)),
          el("td", { class: "num", "data-field": "duration" }, fmtSeconds(r.duration_seconds)),
          el("td", { class: "mono wrap" }, t.train_seconds !== undefined
            ? "train " + fmtSeconds(t.train_seconds) + " · embed " + fmtSeconds(t.reembed_seconds || 0) + " · eval " + fmtSeconds(t.evaluate_seconds || 0) + (t.promote_seconds !== undefined ? " · promote " + fmtSeconds(t.promote_seconds) : "")
            : "–"),
          el("td", { class: "num" }, metricPair(r.metrics, PRIMARY)),
          el("td", null, reasonsList(r.reasons)),
        ]);
      });
      var pager = el("div", { class: "pager" }, [
        el("span", { "data-field": "runs-range" }, page.total ? (page.offset + 1) + "–" + (page.offset + page.runs.length) + " of " + page.total : "0 runs"),
        el("button", { id: "runs-newer", disabled: page.offset === 0, onclick: function () { cyclesOffset = Math.max(0, cyclesOffset - PAGE); render(); } }, "Newer"),
        el("button", { id: "runs-older", disabled: page.offset + page.runs.length >= page.total, onclick: function () { cyclesOffset += PAGE; render(); } }, "Older"),
      ]);
      append(app, [
        el("h1", null, "Fine-tuning cycles"),
        el("p", { class: "subtitle" }, "Every training run: its feedback window, timings, outcome and the gate's reasons."),
        el("div", { class: "two" }, [
          panel("Held-out metrics per cycle", [chartBox, el("div", { class: "chart-note" },
            evaluated.length ? "Solid: candidate; dashed: active model on the same held-out feedback." : "No evaluated cycle yet.")]),
          panel("Cycle timings (s)", [timeBox, el("div", { class: "chart-note" },
            evaluated.length ? "Seconds per stage of each evaluated cycle." : "No evaluated cycle yet.")]),
        ]),
        panel("Runs", page.runs.length ? [table(
          ["Run", "Started (UTC)", "Outcome", "Version", "Feedback", "Train / held-out", "Duration", "Timings", "Triplet acc.", "Reasons"], rows, [0, 3, 5, 6, 8]), pager]
          : empty("No fine-tuning cycle has run yet.")),
      ]);
      var xs = evaluated.map(function (r) { return r.id; });
      var m = function (side, key) { return evaluated.map(function (r) { var v = r.metrics[side] && r.metrics[side][key]; return typeof v === "number" ? v : null; }); };
      lineChart(chartBox, "", xs, [
        { label: "candidate triplet acc.", values: m("candidate", PRIMARY), color: "#2f5fd0" },
        { label: "active triplet acc.", values: m("active", PRIMARY), color: "#2f5fd0", dash: [5, 5] },
        { label: "candidate NDCG@10", values: m("candidate", GUARD), color: "#e07b39" },
        { label: "active NDCG@10", values: m("active", GUARD), color: "#e07b39", dash: [5, 5] },
      ], { xLabel: "run", yRange: function (u, min, max) { return [Math.max(0, Math.floor((min - 0.05) * 10) / 10), Math.min(1, Math.ceil((max + 0.05) * 10) / 10)]; } });
      var tm = function (key) { return evaluated.map(function (r) { var t = r.timings || {}; return typeof t[key] === "number" ? t[key] : null; }); };
      lineChart(timeBox, "", xs, [
        { label: "train", values: tm("train_seconds") },
        { label: "re-embed", values: tm("reembed_seconds") },
        { label: "evaluate", values: tm("evaluate_seconds") },
        { label: "promote", values: tm("promote_seconds") },
      ], { xLabel: "run" });
    });
  };

  var feedbackDays = 30;
  pages.feedback = function () {
    return api("/feedback/timeline?days=" + feedbackDays).then(function (res) {
      var data = need(res, "GET /feedback/timeline");
      var totals = data.totals;
      var chartBox = el("div", { class: "chart", id: "chart-feedback" });
      var tabs = el("div", { class: "tabs" }, [7, 30, 90].map(function (d) {
        return el("button", { class: d === feedbackDays ? "current" : null, "data-days": d, onclick: function () { feedbackDays = d; render(); } }, d + " days");
      }));
      var unselected = data.top_unselected_queries.map(function (q) {
        return el("tr", null, [el("td", { class: "text", "data-field": "unselected-query" }, q.query), el("td", { class: "num" }, fmtNum(q.searches))]);
      });
      var selected = data.top_selected_items.map(function (i) {
        return el("tr", null, [
          el("td", { class: "mono" }, i.item_id),
          el("td", { class: "text", "data-field": "item-text" }, i.text === null ? el("span", { class: "muted" }, "(not in the catalog)") : i.text),
          el("td", { class: "num", "data-field": "item-selections" }, fmtNum(i.selections)),
        ]);
      });
      append(app, [
        el("div", { class: "panel-head" }, [el("h1", null, "Feedback"), tabs]),
        el("p", { class: "subtitle" }, "Searches, selections and click-through per UTC day over the last " + feedbackDays + " days."),
        el("div", { class: "grid" }, [
          card("Searches", fmtNum(totals.searches), null, "searches"),
          card("Selections", fmtNum(totals.selections), null, "selections"),
          card("Searches with a selection", fmtNum(totals.searches_with_selection), null, "searches_with_selection"),
          card("Click-through", fmtPct(totals.click_through), "Share of searches with at least one selection.", "click_through"),
        ]),
        panel("Per day", [chartBox, el("div", { class: "chart-note" }, "Bars: searches; line: selections; dotted: click-through (right axis).")]),
        el("div", { class: "two" }, [
          panel("Top queries with no selection", unselected.length ? table(["Query", "Searches"], unselected, [1]) : empty("Every query led to a selection.")),
          panel("Top selected items", selected.length ? table(["Item", "Text", "Selections"], selected, [2]) : empty("No selections in this window.")),
        ]),
      ]);
      var xs = data.days.map(function (d) { return Date.parse(d.date + "T00:00:00Z") / 1000; });
      lineChart(chartBox, "", xs, [
        { label: "searches", values: data.days.map(function (d) { return d.searches; }), bars: true, fill: "rgba(47,95,208,0.25)", color: "#2f5fd0" },
        { label: "selections", values: data.days.map(function (d) { return d.selections; }), color: "#1d7f4e" },
        { label: "click-through", values: data.days.map(function (d) { return d.click_through; }), color: "#e07b39", dash: [2, 4], scale: "ctr" },
      ], { time: true, xLabel: "day", secondAxis: "ctr", height: 260 });
    });
  };

  function trialHistory(res) {
    if (!res.ok || !res.data || !Array.isArray(res.data.history) || !res.data.history.length) return null;
    var rows = res.data.history.map(function (t) {
      var o = (t.outcome && typeof t.outcome === "object") ? t.outcome : {};
      return el("tr", { "data-trial": t.id }, [
        el("td", { class: "num" }, "#" + t.id),
        el("td", { class: "num" }, "v" + t.candidate_version + " vs v" + t.active_version),
        el("td", null, badge(t.status)),
        el("td", { class: "mono" }, fmtTime(t.started_at)),
        el("td", { class: "mono" }, fmtTime(t.decided_at)),
        el("td", { class: "num" }, o.wins !== undefined ? fmtNum(o.wins) + " / " + fmtNum(o.losses) + " / " + fmtNum(o.ties) : "–"),
        el("td", null, t.reason ? el("span", { class: "text" }, t.reason) : el("span", { class: "muted" }, "–")),
      ]);
    });
    return panel("Recent trials", table(["Trial", "Candidate", "Status", "Started (UTC)", "Decided (UTC)", "Wins / losses / ties", "Reason"], rows, [0, 1, 5]));
  }

  pages.trial = function () {
    return Promise.all([api("/status"), api("/trial")]).then(function (res) {
      var status = need(res[0], "GET /status");
      var trial = status.trial;
      var history = trialHistory(res[1]);
      append(app, [el("h1", null, "Trial"), el("p", { class: "subtitle" },
        "A candidate on trial is interleaved with the active model and credited by the users' selections.")]);
      if (!trial) {
        append(app, [panel("Current trial", empty(status.trial === undefined
          ? "no trial running (this server does not report trials)" : "no trial running")), history]);
        return;
      }
      var stop = el("button", { class: "danger", id: "trial-stop", onclick: function () {
        stop.disabled = true;
        api("/trial/stop", { method: "POST", body: {} }).then(function (r) {
          if (r.ok) { flash("ok", "Trial stopped."); render(); return; }
          stop.disabled = false;
          var hint = (r.status === 401 || r.status === 403) ? " Enter the admin token in the top bar." : r.status === 404 ? " This server cannot stop trials." : "";
          flash("error", "Stop refused (" + r.status + "): " + errorText(r) + hint);
        });
      } }, "Stop trial");
      var known = ["candidate_version", "searches", "wins", "losses", "ties", "statistic", "decision"];
      var extra = Object.keys(trial).filter(function (k) { return known.indexOf(k) < 0 && typeof trial[k] !== "object"; });
      append(app, [
        el("div", { class: "grid" }, [
          card("Candidate", "v" + trial.candidate_version, "vs active v" + status.active_version, "trial-candidate"),
          card("Searches", fmtNum(trial.searches), null, "trial-searches"),
          card("Wins", fmtNum(trial.wins), "candidate preferred", "trial-wins"),
          card("Losses", fmtNum(trial.losses), "active preferred", "trial-losses"),
          card("Ties", fmtNum(trial.ties), null, "trial-ties"),
          card("Statistic", typeof trial.statistic === "number" ? fmtNum(trial.statistic, 3) : fmtNum(trial.statistic), null, "trial-statistic"),
          card("Decision so far", trial.decision === null || trial.decision === undefined ? "–" : String(trial.decision), null, "trial-decision", true),
        ]),
        panel("Details", extra.length ? el("dl", { class: "kv" }, extra.map(function (k) {
          return [el("dt", null, k), el("dd", null, String(trial[k]))];
        })) : el("p", { class: "muted" }, "Refreshes every 5 seconds."), stop),
        history,
      ]);
      timer = setTimeout(render, 5000);
    });
  };

  function reviewItems(data) {
    if (Array.isArray(data)) return data;
    if (data && typeof data === "object") {
      var keys = ["reviews", "queue", "items", "questions"];
      for (var i = 0; i < keys.length; i++) if (Array.isArray(data[keys[i]])) return data[keys[i]];
    }
    return [];
  }

  pages.review = function () {
    return api("/review/queue?limit=20").then(function (res) {
      append(app, [el("h1", null, "Review queue"), el("p", { class: "subtitle" },
        "Questions whose answers would teach the model most; an answer is a trusted judgment.")]);
      if (res.status === 404 || res.status === 405) {
        append(app, panel("Open questions", empty("The review queue is not available on this server.")));
        return;
      }
      var questions = reviewItems(need(res, "GET /review/queue"));
      if (!questions.length) { append(app, panel("Open questions", empty("No open questions."))); return; }
      append(app, questions.map(function (q) {
        var boxes = [];
        var list = el("ul", { class: "candidates" }, (q.candidates || []).map(function (c) {
          var box = el("input", { type: "checkbox", value: c.item_id, "aria-label": "relevant" });
          boxes.push(box);
          return el("li", null, el("label", null, [box, " ", el("span", { class: "mono" }, c.item_id), " ",
            el("span", { class: "text" }, c.text), " ", el("span", { class: "muted" }, fmtNum(c.score, 3))]));
        }));
        var submit = el("button", { class: "primary", onclick: function () {
          var chosen = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
          var rest = boxes.filter(function (b) { return !b.checked; }).map(function (b) { return b.value; });
          submit.disabled = true;
          api("/review/answer", { method: "POST", body: { review_id: q.review_id, selected: chosen, rejected: rest } }).then(function (r) {
            if (r.ok) { flash("ok", "Answer recorded."); render(); return; }
            submit.disabled = false;
            flash("error", "Answer refused (" + r.status + "): " + errorText(r));
          });
        } }, "Submit answer");
        var why = el("p", null, el("span", { class: "badge" }, String(q.reason || "").replace(/_/g, " ")));
        return panel(q.query, [why, list,
          el("p", { class: "muted" }, "Tick the relevant items; the others are recorded as not relevant.")], submit);
      }));
    });
  };

  // ---------------------------------------------------------------- routing
  function currentPage() {
    var rest = location.pathname.slice(ROOT.length).replace(/^\/dashboard\/?/, "").replace(/\/$/, "");
    return pages[rest] ? rest : "overview";
  }

  /** Render the current page into a fresh <main>, swapped in when complete (a refresh does not flicker). */
  function render() {
    if (timer) { clearTimeout(timer); timer = null; }
    var name = currentPage();
    document.querySelectorAll("#nav a").forEach(function (a) { a.classList.toggle("current", a.getAttribute("data-page") === name); });
    document.title = name.charAt(0).toUpperCase() + name.slice(1) + " · embedloop";
    var started = performance.now();
    var old = app;
    old.setAttribute("aria-busy", "true");  // the page on screen is stale until the new one is swapped in
    app = el("main", { id: "app", "aria-busy": "true" });
    mounted = [];
    return pages[name]().then(null, function (err) {
      clear(app);
      append(app, [el("h1", null, "Cannot show this page"), el("p", { class: "subtitle", "data-field": "page-error" }, String(err && err.message || err))]);
    }).then(function () {
      old.replaceWith(app);
      mounted.forEach(function (draw) { draw(); });  // charts need their laid-out width
      mounted = [];
      stamp();
      app.setAttribute("data-rendered-ms", String(Math.round(performance.now() - started)));
      app.setAttribute("data-since-navigation-ms", String(Math.round(performance.now())));
      app.setAttribute("aria-busy", "false");
    });
  }

  renderAuth();
  render();
})();
