"""The report page's stylesheet and scripts (inline: the page needs no network).

``GUARD_JS`` runs first and counts every error the page's scripts raise into
``#rawtcp-status[data-errors]`` and the ``#rawtcp-errors`` list; ``LADDER_JS`` reads the
JSON in ``#rawtcp-data`` (:func:`rawtcp.report.html_model.ladder_model`) and draws the
zoomable ladder on a canvas, with rawtcp's timer lanes, and a tooltip with the decoded header
and the fault rules of the segment under the mouse. When it has drawn, it sets
``data-ready="1"``, ``data-segments`` (segments in the data) and ``data-drawn`` (segments
drawn in the first, whole-run view) on ``#rawtcp-status``. Every text from the trace reaches
the page through ``textContent`` or the canvas, never as markup.
"""

from __future__ import annotations

__all__ = ["CSS", "GUARD_JS", "LADDER_JS"]

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 16px 40px; color: #222; }
h1 { font-size: 22px; margin: 18px 0 4px; } h2 { font-size: 17px; margin: 26px 0 8px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff;
           font-weight: bold; } .pass { background: #2a7d2a; } .fail { background: #b22; }
.muted { color: #666; } table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left;
         vertical-align: top; }
td.ok { color: #2a7d2a; font-weight: bold; } td.bad { color: #b22; font-weight: bold; }
td.ev { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12px; }
#ladder-box { position: relative; border: 1px solid #ccc; }
#ladder { display: block; width: 100%; height: 640px; cursor: crosshair; }
#tip { position: absolute; display: none; pointer-events: none; background: #fffbe6;
       border: 1px solid #bba; padding: 6px 8px; font: 12px/1.35 ui-monospace, monospace;
       white-space: pre; z-index: 2; box-shadow: 0 2px 6px rgba(0,0,0,.2); }
.controls { margin: 6px 0; } .controls button, .controls select { margin-right: 6px; }
img.plot { max-width: 100%; border: 1px solid #eee; margin: 6px 0; }
#rawtcp-errors { color: #b22; } .legend span { margin-right: 14px; }
.sw { display: inline-block; width: 14px; height: 3px; vertical-align: middle;
      margin-right: 4px; }
"""

GUARD_JS = """
(function () {
  "use strict";
  function record(msg) {
    var st = document.getElementById("rawtcp-status");
    var list = document.getElementById("rawtcp-errors");
    if (st) {
      st.setAttribute("data-errors", String(Number(st.getAttribute("data-errors") || 0) + 1));
    }
    if (list) {
      var li = document.createElement("li");
      li.textContent = String(msg);
      list.appendChild(li);
    }
  }
  window.rawtcpRecordError = record;
  window.addEventListener("error", function (ev) {
    record((ev && ev.message) || "script error");
  });
  window.addEventListener("unhandledrejection", function (ev) {
    record("unhandled rejection: " + (ev && ev.reason));
  });
})();
"""

LADDER_JS = """
(function () {
  "use strict";
  var status = document.getElementById("rawtcp-status");
  var D = JSON.parse(document.getElementById("rawtcp-data").textContent);
  var C = {};
  D.seg_columns.forEach(function (name, i) { C[name] = i; });
  var L = {};
  D.lost_columns.forEach(function (name, i) { L[name] = i; });
  var segs = D.segs, lost = D.lost, lanes = D.timers;
  var canvas = document.getElementById("ladder");
  var box = document.getElementById("ladder-box");
  var tip = document.getElementById("tip");
  var ctx = canvas.getContext("2d");
  var TOP = 84, LANE_W = 22, SLANT = 10, PAD = 12;
  var LANE_COLORS = ["#d9534f", "#5b8def", "#9b59b6", "#e69a00", "#16a085", "#7f8c8d"];
  var W = 0, H = 0, xL = 0, xR = 0, lanesW = 0;
  var end = Math.max(D.end, 1);
  var view = {start: 0, scale: 1};      // scale: px per us
  var connFilter = -1, hover = null;
  var tStarts = segs.map(function (s) { return s[C.t]; });
  // segments sent or received at the same instant (one burst) are drawn a few pixels apart
  var OFF = 4, MAX_OFF = 60, offs = new Array(segs.length), maxOff = 0;
  segs.forEach(function (s, i) {
    var p = i > 0 ? segs[i - 1] : null;
    offs[i] = p && p[C.t] === s[C.t] && p[C.dir] === s[C.dir] ?
      Math.min(offs[i - 1] + OFF, MAX_OFF) : 0;
    maxOff = Math.max(maxOff, offs[i]);
  });
  var index = new Map();
  segs.forEach(function (s, i) { index.set(s, i); });

  function fmtMs(us) { return (us / 1000).toFixed(3) + " ms"; }
  function y(t) { return TOP + (t - view.start) * view.scale; }
  function tAt(py) { return view.start + (py - TOP) / view.scale; }
  function lowerBound(arr, v) {
    var lo = 0, hi = arr.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (arr[mid] < v) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function isDropped(s) {
    return s[C.faults].some(function (f) { return f.indexOf("drop:") === 0; });
  }
  function segColor(s) {
    var f = s[C.flags];
    if (f.indexOf("R") >= 0) return "#b22";
    if (s[C.rtx]) return "#e0301e";
    if (f.indexOf("S") >= 0) return "#1f6f1f";
    if (f.indexOf("F") >= 0) return "#8e44ad";
    if (s[C.len] > 0) return "#1a4fa0";
    return "#555";
  }
  function label(s) {
    var t = s[C.flags] + " seq=" + s[C.rseq];
    if (s[C.flags].indexOf("A") >= 0) t += " ack=" + s[C.rack];
    t += " len=" + s[C.len];
    if (s[C.rtx]) t += " (rtx)";
    return t;
  }
  function layout() {
    var ratio = window.devicePixelRatio || 1;
    W = Math.max(canvas.clientWidth, 600);
    H = Math.max(canvas.clientHeight, 300);
    canvas.width = Math.round(W * ratio);
    canvas.height = Math.round(H * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    lanesW = PAD + lanes.length * LANE_W;
    xL = lanesW + 150;
    xR = W - 170;
  }
  function fit() {
    view.start = 0;
    view.scale = (H - TOP - PAD) / end;
  }
  function visible(s) { return connFilter < 0 || s[C.conn] === connFilter; }
  function drawArrow(x1, y1, x2, y2, color, dropped, width) {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    var xe = x2, ye = y2;
    if (dropped) { xe = (x1 + x2) / 2; ye = (y1 + y2) / 2; }
    ctx.moveTo(x1, y1);
    ctx.lineTo(xe, ye);
    ctx.stroke();
    if (dropped) {
      ctx.strokeStyle = "#d00";
      ctx.beginPath();
      ctx.moveTo(xe - 5, ye - 5); ctx.lineTo(xe + 5, ye + 5);
      ctx.moveTo(xe + 5, ye - 5); ctx.lineTo(xe - 5, ye + 5);
      ctx.stroke();
      return;
    }
    var dir = x2 > x1 ? -1 : 1;
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.moveTo(x2, y2);
    ctx.lineTo(x2 + dir * 7, y2 - 3);
    ctx.lineTo(x2 + dir * 7, y2 + 3);
    ctx.closePath();
    ctx.fill();
  }
  function segGeom(s) {
    var yt = y(s[C.t]) + offs[index.get(s)];
    if (s[C.dir] === "out") return [xL, yt, xR, yt + SLANT];
    return [xR, yt - SLANT, xL, yt];
  }
  function draw() {
    ctx.clearRect(0, 0, W, H);
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    var t1 = tAt(H), t0v = tAt(TOP - SLANT);
    // time grid
    var stepUs = Math.pow(10, Math.ceil(Math.log10(Math.max(60 / view.scale, 1))));
    if (stepUs / 2 * view.scale > 60) stepUs /= 2;
    ctx.fillStyle = "#999"; ctx.strokeStyle = "#eee"; ctx.lineWidth = 1;
    for (var g = Math.ceil(Math.max(view.start, 0) / stepUs) * stepUs; g <= t1; g += stepUs) {
      var gy = y(g);
      ctx.beginPath(); ctx.moveTo(lanesW, gy); ctx.lineTo(W, gy); ctx.stroke();
      ctx.textAlign = "left";
      ctx.fillText(fmtMs(g), lanesW + 4, gy - 6);
    }
    // headers and the two time lines
    ctx.fillStyle = "#222"; ctx.textAlign = "center";
    ctx.font = "bold 13px system-ui, sans-serif";
    ctx.fillText("rawtcp", xL, TOP - 24);
    ctx.fillText("peer (kernel)", xR, TOP - 24);
    ctx.font = "10px system-ui, sans-serif";
    lanes.forEach(function (lane, i) {
      ctx.save();
      ctx.translate(PAD + i * LANE_W + LANE_W / 2, TOP - 6);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillStyle = LANE_COLORS[i % LANE_COLORS.length];
      ctx.fillText(lane.title, 0, 0);
      ctx.restore();
    });
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#333"; ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(xL, TOP - 8); ctx.lineTo(xL, H);
    ctx.moveTo(xR, TOP - 8); ctx.lineTo(xR, H);
    ctx.stroke();
    // timer lanes (rawtcp's side)
    lanes.forEach(function (lane, i) {
      var x = PAD + i * LANE_W + 6, color = LANE_COLORS[i % LANE_COLORS.length];
      lane.intervals.forEach(function (iv) {
        var a = iv[0], b = iv[1] === null ? end : iv[1];
        if (b < t0v || a > t1) return;
        if (connFilter >= 0 && iv[4] !== connFilter) return;
        var ya = Math.max(y(a), TOP), yb = Math.min(y(b), H);
        ctx.fillStyle = color;
        ctx.globalAlpha = 0.55;
        ctx.fillRect(x, ya, 9, Math.max(yb - ya, 1.5));
        ctx.globalAlpha = 1;
        if (iv[3] === "fired" && yb < H) {
          ctx.beginPath(); ctx.arc(x + 4.5, yb, 3.5, 0, 2 * Math.PI); ctx.fill();
        }
      });
    });
    // states
    ctx.textAlign = "right"; ctx.fillStyle = "#1f6f1f";
    var lastY = -1e9;
    D.states.forEach(function (st) {
      if (connFilter >= 0 && st[3] !== connFilter) return;
      var sy = y(st[0]);
      if (sy < TOP || sy > H || sy - lastY < 12) return;
      ctx.fillText(st[1], xL - 8, sy);
      lastY = sy;
    });
    ctx.textAlign = "left"; ctx.fillStyle = "#8a4b00"; lastY = -1e9;
    D.kstates.forEach(function (st) {
      var sy = y(st[0]);
      if (sy < TOP || sy > H || sy - lastY < 12) return;
      ctx.fillText(st[1], xR + 8, sy);
      lastY = sy;
    });
    // segments
    var i0 = lowerBound(tStarts, t0v - maxOff / view.scale), i1 = lowerBound(tStarts, t1 + 1);
    var n = 0, showLabels = (i1 - i0) < 4000, lastLabel = -1e9;
    for (var i = i0; i < i1; i++) {
      var s = segs[i];
      if (!visible(s)) continue;
      var gm = segGeom(s), hot = hover === s;
      drawArrow(gm[0], gm[1], gm[2], gm[3], hot ? "#000" : segColor(s), isDropped(s),
                hot ? 2.5 : 1.2);
      n++;
      var ly = (gm[1] + gm[3]) / 2 - 7;
      if (showLabels && ly - lastLabel >= 12) {
        ctx.fillStyle = segColor(s); ctx.textAlign = "center";
        ctx.fillText(label(s), (xL + xR) / 2, ly);
        lastLabel = ly;
      }
    }
    lost.forEach(function (p) {
      if (connFilter >= 0 && p[L.conn] !== connFilter) return;
      var yt = y(p[L.t]);
      if (yt < TOP - SLANT || yt > H) return;
      drawArrow(xR, yt - SLANT, xL, yt, hover === p ? "#000" : "#c55", true, 1.2);
    });
    return n;
  }
  function segLines(s) {
    var who = s[C.dir] === "out" ? "rawtcp -> peer" : "peer -> rawtcp";
    var out = [who + "   " + s[C.flags] + (s[C.rtx] ? "   retransmission" : ""),
      D.conns[s[C.conn]] || "",
      s[C.src] + " > " + s[C.dst],
      "seq " + s[C.rseq] + "  (" + s[C.seq] + ")",
      "ack " + s[C.rack] + "  (" + s[C.ack] + ")",
      "len " + s[C.len] + "   win " + s[C.win]];
    if (s[C.opts]) out.push("options " + s[C.opts]);
    out.push("rawtcp state " + (s[C.state] || "?"));
    out.push("t " + fmtMs(s[C.t]));
    if (s[C.faults].length) {
      s[C.faults].forEach(function (f) { out.push("fault rule " + f); });
    } else {
      out.push("no fault rule acted on it");
    }
    return out;
  }
  function lostLines(p) {
    return ["peer -> rawtcp   " + p[L.flags] + "   never reached rawtcp",
      D.conns[p[L.conn]] || "", "seq " + p[L.rseq] + "  ack " + p[L.rack] +
      "  len " + p[L.len], "t " + fmtMs(p[L.t]), "fault rule " + p[L.action] + ": " + p[L.rule]];
  }
  function near(px, py) {
    if (px < lanesW) {
      var li = Math.floor((px - PAD) / LANE_W);
      if (li < 0 || li >= lanes.length) return null;
      var t = tAt(py), best = null;
      lanes[li].intervals.forEach(function (iv) {
        var b = iv[1] === null ? end : iv[1];
        if (iv[0] <= t && t <= b && (connFilter < 0 || iv[4] === connFilter)) best = iv;
      });
      if (!best) return null;
      return {obj: best, lines: [lanes[li].title + " timer (" + lanes[li].name + ")",
        D.conns[best[4]] || "", "set at " + fmtMs(best[0]),
        "due at " + (best[2] === null ? "?" : fmtMs(best[2])),
        (best[3] === "pending" ? "still pending at the end" :
          best[3] + " at " + fmtMs(best[1]))]};
    }
    var tq = tAt(py), span = (SLANT + 8 + maxOff) / view.scale;
    var i0 = lowerBound(tStarts, tq - span), i1 = lowerBound(tStarts, tq + span);
    var bestS = null, bestD = 9;
    for (var i = i0; i < i1; i++) {
      var s = segs[i];
      if (!visible(s)) continue;
      var gm = segGeom(s);
      var frac = Math.min(Math.max((px - gm[0]) / (gm[2] - gm[0]), 0), 1);
      var d = Math.abs(py - (gm[1] + (gm[3] - gm[1]) * frac));
      if (d < bestD) { bestD = d; bestS = s; }
    }
    if (bestS) return {obj: bestS, lines: segLines(bestS)};
    var bestP = null;
    lost.forEach(function (p) {
      var d = Math.abs(py - y(p[L.t]) + SLANT / 2);
      if (d < bestD) { bestD = d; bestP = p; }
    });
    return bestP ? {obj: bestP, lines: lostLines(bestP)} : null;
  }
  function showTip(ev) {
    var r = canvas.getBoundingClientRect();
    var px = ev.clientX - r.left, py = ev.clientY - r.top;
    var hit = near(px, py);
    var obj = hit ? hit.obj : null;
    if (obj !== hover) { hover = obj; draw(); }
    if (!hit) { tip.style.display = "none"; return; }
    tip.textContent = hit.lines.join("\\n");
    tip.style.display = "block";
    var left = px + 16;
    if (left + tip.offsetWidth > W) left = Math.max(px - tip.offsetWidth - 16, 0);
    tip.style.left = left + "px";
    tip.style.top = Math.min(py + 12, H - tip.offsetHeight) + "px";
  }
  function zoom(factor, py) {
    var t = tAt(py === undefined ? (TOP + H) / 2 : py);
    view.scale = Math.min(Math.max(view.scale * factor, 1e-7), 50);
    view.start = t - ((py === undefined ? (TOP + H) / 2 : py) - TOP) / view.scale;
    draw();
  }
  var drag = null;
  canvas.addEventListener("mousemove", function (ev) {
    if (drag) {
      view.start = drag.start - (ev.clientY - drag.y) / view.scale;
      draw();
      return;
    }
    showTip(ev);
  });
  canvas.addEventListener("mouseleave", function () {
    tip.style.display = "none"; hover = null; drag = null; draw();
  });
  canvas.addEventListener("mousedown", function (ev) {
    drag = {y: ev.clientY, start: view.start};
  });
  window.addEventListener("mouseup", function () { drag = null; });
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var r = canvas.getBoundingClientRect();
    if (ev.ctrlKey || ev.shiftKey || ev.altKey) {
      zoom(ev.deltaY < 0 ? 1.25 : 0.8, ev.clientY - r.top);
    } else {
      view.start += ev.deltaY / view.scale;
      draw();
    }
  }, {passive: false});
  document.getElementById("zoom-in").addEventListener("click", function () { zoom(2); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoom(0.5); });
  document.getElementById("zoom-fit").addEventListener("click", function () {
    fit(); draw();
  });
  var sel = document.getElementById("conn-filter");
  D.conns.forEach(function (c, i) {
    var o = document.createElement("option");
    o.value = String(i);
    o.textContent = c || "(no connection)";
    sel.appendChild(o);
  });
  sel.addEventListener("change", function () { connFilter = Number(sel.value); draw(); });
  window.addEventListener("resize", function () { layout(); draw(); });
  layout();
  fit();
  var drawn = draw();
  var timers = lanes.reduce(function (a, l) { return a + l.intervals.length; }, 0);
  document.getElementById("ladder-summary").textContent = segs.length + " segments, " +
    lost.length + " packets lost before rawtcp saw them, " + timers + " timer intervals, " +
    D.conns.length + " connection(s), " + fmtMs(end) + ". Wheel scrolls, ctrl/shift+wheel " +
    "zooms, drag pans; hover a segment for its header and fault rules.";
  status.setAttribute("data-segments", String(segs.length));
  status.setAttribute("data-drawn", String(drawn));
  status.setAttribute("data-lost", String(lost.length));
  status.setAttribute("data-timers", String(timers));
  // #seg=N: point at segment N as the mouse would (hit test included) and show its tooltip;
  // the index the hit test found goes to data-tip-seg (for tests and for links to a segment)
  var m = /^#seg=([0-9]+)$/.exec(window.location.hash);
  if (m && segs[Number(m[1])]) {
    var target = segs[Number(m[1])];
    view.scale = Math.max(view.scale, 0.04);          // at least 40 px per ms
    view.start = Math.max(target[C.t] - (H - TOP) / 2 / view.scale, 0);
    draw();
    var gm = segGeom(target);
    var hit = near((gm[0] + gm[2]) / 2, (gm[1] + gm[3]) / 2);
    if (hit) {
      hover = hit.obj;
      draw();
      tip.textContent = hit.lines.join("\\n");
      tip.style.display = "block";
      tip.style.left = Math.max(Math.min((gm[0] + gm[2]) / 2 + 16, W - tip.offsetWidth), 0) +
        "px";
      tip.style.top = Math.max(Math.min((gm[1] + gm[3]) / 2 + 12, H - tip.offsetHeight), 0) +
        "px";
      status.setAttribute("data-tip-seg", String(index.has(hit.obj) ? index.get(hit.obj) : -1));
    } else {
      status.setAttribute("data-tip-seg", "none");
    }
  }
  status.setAttribute("data-ready", "1");
})();
"""
