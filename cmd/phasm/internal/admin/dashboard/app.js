// The phasm dashboard: polls this node's admin API once a second and
// renders the members, the shard map and the recent throughput and
// latency. Plain JavaScript, no dependencies, no build step; it talks to
// the node that served it and to nothing else.
(function () {
  'use strict';

  var TOKEN_KEY = 'phasm.adminToken';
  var POLL_MS = 1000;
  var WINDOW_S = 600; // the charts' time span
  var PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
    '#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02'];

  // Owners keep their colour for the life of the page, so a shard that
  // moves changes colour and the others do not.
  var colours = {};
  var nextColour = 0;
  var updates = 0;

  function $(id) { return document.getElementById(id); }

  function colourOf(owner) {
    if (!owner) { return ''; }
    if (!colours[owner]) {
      colours[owner] = PALETTE[nextColour % PALETTE.length];
      nextColour++;
    }
    return colours[owner];
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }

  // --- the bearer token -------------------------------------------------

  function takeTokenFromURL() {
    var m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

  function showAuth(show) {
    $('auth').hidden = !show;
    document.body.dataset.auth = show ? 'required' : 'ok';
  }

  $('auth-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value);
    $('token').value = '';
    showAuth(false);
  });

  // --- fetching -----------------------------------------------------------

  function get(path) {
    var headers = {};
    var t = token();
    if (t) { headers.Authorization = 'Bearer ' + t; }
    return fetch(path, { headers: headers, cache: 'no-store' }).then(function (r) {
      if (r.status === 401) {
        var e = new Error('the node wants its admin token');
        e.unauthorized = true;
        throw e;
      }
      if (r.status === 404) { return null; } // e.g. no cluster view on a single node
      if (!r.ok) { throw new Error(path + ': HTTP ' + r.status); }
      return r.json();
    });
  }

  function setConn(ok, msg) {
    var c = $('conn');
    c.className = 'conn ' + (ok ? 'ok' : 'bad');
    c.textContent = ok ? 'live · updated ' + new Date().toLocaleTimeString() : 'not updating: ' + msg;
  }

  function poll() {
    Promise.all([get('/v1/status'), get('/v1/cluster/view'), get('/v1/series')]).then(function (res) {
      showAuth(false);
      render(res[0], res[1], res[2]);
      setConn(true);
    }).catch(function (e) {
      if (e.unauthorized) { showAuth(true); }
      setConn(false, e.message);
    }).then(function () { setTimeout(poll, POLL_MS); });
  }

  // --- rendering ----------------------------------------------------------

  // model turns the responses into members and shard owners; a single node
  // (no cluster view) is a cluster of one that owns every shard.
  function model(status, view) {
    var cl = status.cluster;
    if (!cl || !view) {
      var owners = [];
      for (var i = 0; i < status.shards; i++) { owners.push(status.node_id); }
      return {
        leader: '', members: [{ id: status.node_id, status: 'alive', suffrage: '', shards: status.shards, raft: '', remote: '' }],
        owners: owners, epochs: [], epoch: 0, cluster: null
      };
    }
    var members = (cl.members || []).map(function (m) {
      return { id: m.ID, status: m.status_name, suffrage: m.suffrage, shards: m.owned_shards, raft: m.Addrs.Raft, remote: m.Addrs.Remote };
    });
    var shards = (view.Map && view.Map.Shards) || [];
    return {
      leader: view.Leader || cl.leader, members: members,
      owners: shards.map(function (a) { return a.Owner; }), epochs: shards.map(function (a) { return a.Epoch; }),
      epoch: view.Map ? view.Map.Epoch : 0, cluster: cl
    };
  }

  function render(status, view, series) {
    var m = model(status, view);
    m.members.forEach(function (x) { colourOf(x.id); });
    renderSummary(status, m);
    renderMembers(m);
    renderGrid(m);
    renderCharts(series ? series.points : []);
    updates++;
    document.body.dataset.updates = String(updates);
    document.body.dataset.members = String(m.members.length);
    document.body.dataset.mapEpoch = String(m.epoch);
  }

  function renderSummary(status, m) {
    $('node').textContent = 'node ' + status.node_id + (status.ready ? '' : ' (not ready)');
    var items = [['node', status.node_id], ['ready', status.ready ? 'yes' : 'no'], ['store', status.store],
      ['uptime', formatDuration(status.uptime_s)], ['shards', status.shards], ['active entities', status.stats.Active]];
    if (m.cluster) {
      items.push(['leader', m.leader || 'none (election)'], ['raft state', m.cluster.raft_state], ['term', m.cluster.term],
        ['commit index', m.cluster.commit_index], ['map epoch', m.epoch], ['members', m.members.length]);
    } else {
      items.push(['mode', 'single node']);
    }
    var dl = $('summary');
    dl.textContent = '';
    items.forEach(function (kv) {
      var d = el('div');
      d.appendChild(el('dt', kv[0]));
      d.appendChild(el('dd', kv[1]));
      dl.appendChild(d);
    });
  }

  function renderMembers(m) {
    var tb = $('members');
    tb.textContent = '';
    m.members.forEach(function (x) {
      var tr = el('tr');
      tr.dataset.member = x.id;
      var name = el('td');
      var dot = el('span', null, 'dot');
      dot.style.background = colourOf(x.id);
      name.appendChild(dot);
      name.appendChild(document.createTextNode(x.id));
      if (x.id === m.leader) { name.appendChild(el('span', 'leader', 'leader')); }
      tr.appendChild(name);
      tr.appendChild(el('td', x.status, 'status-' + x.status));
      tr.appendChild(el('td', x.suffrage || '–'));
      tr.appendChild(el('td', x.shards));
      tr.appendChild(el('td', x.raft || '–'));
      tr.appendChild(el('td', x.remote || '–'));
      tb.appendChild(tr);
    });
  }

  function renderGrid(m) {
    var grid = $('grid');
    var n = m.owners.length;
    if (grid.children.length !== n) {
      grid.textContent = '';
      grid.classList.toggle('dense', n > 256);
      for (var i = 0; i < n; i++) {
        var c = el('div', i, 'cell');
        c.dataset.shard = String(i);
        grid.appendChild(c);
      }
    }
    var counts = {};
    for (var s = 0; s < n; s++) {
      var owner = m.owners[s] || '';
      var cell = grid.children[s];
      counts[owner] = (counts[owner] || 0) + 1;
      if (cell.dataset.owner === owner && cell.dataset.epoch === String(m.epochs[s] || 0)) { continue; }
      cell.dataset.owner = owner;
      cell.dataset.epoch = String(m.epochs[s] || 0);
      cell.title = 'shard ' + s + ': ' + (owner || 'unowned') + (m.epochs[s] ? ' (epoch ' + m.epochs[s] + ')' : '');
      cell.classList.toggle('unowned', !owner);
      cell.style.background = owner ? colourOf(owner) : '';
    }
    $('epoch').textContent = m.epoch ? 'epoch ' + m.epoch : '';
    var lg = $('legend');
    lg.textContent = '';
    Object.keys(counts).sort().forEach(function (owner) {
      var item = el('span');
      var dot = el('span', null, 'dot');
      if (owner) { dot.style.background = colourOf(owner); } else { dot.className = 'dot cell unowned'; }
      item.appendChild(dot);
      item.appendChild(document.createTextNode((owner || 'unowned') + ': ' + counts[owner]));
      lg.appendChild(item);
    });
  }

  // --- charts -------------------------------------------------------------

  function renderCharts(points) {
    var last = points.length ? points[points.length - 1] : null;
    $('tput-now').textContent = last ? fmt(last.accepted_per_s + last.rejected_per_s) + ' inputs/s' : 'no data yet';
    document.body.dataset.points = String(points.length);
    document.body.dataset.throughput = last ? String(last.accepted_per_s + last.rejected_per_s) : '0';
    var css = getComputedStyle(document.documentElement);
    var c = function (name) { return css.getPropertyValue(name).trim(); };
    chart($('tput'), points, [
      { get: function (p) { return p.accepted_per_s; }, colour: c('--accepted') },
      { get: function (p) { return p.rejected_per_s; }, colour: c('--rejected') }
    ], '/s');
    var withAppends = points.filter(function (p) { return p.appends > 0; });
    var lat = withAppends.length ? withAppends[withAppends.length - 1] : null;
    $('lat-now').textContent = lat && last && last.t - lat.t < 10000 ?
      'p50 ' + fmt(lat.persist_p50_ms) + ' ms · p99 ' + fmt(lat.persist_p99_ms) + ' ms' : 'no appends in the last 10 s';
    chart($('lat'), withAppends, [
      { get: function (p) { return p.persist_p50_ms; }, colour: c('--p50') },
      { get: function (p) { return p.persist_p99_ms; }, colour: c('--p99') }
    ], ' ms');
  }

  // chart draws lines over the last WINDOW_S seconds, ending now.
  function chart(canvas, points, lines, unit) {
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || 600;
    var h = canvas.clientHeight || 160;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); }
    if (canvas.height !== Math.round(h * dpr)) { canvas.height = Math.round(h * dpr); }
    var g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var left = 52, right = w - 6, top = 8, bottom = h - 18;
    var now = Date.now();
    var max = 0;
    points.forEach(function (p) { lines.forEach(function (l) { max = Math.max(max, l.get(p)); }); });
    max = niceMax(max);
    g.strokeStyle = '#d9dee6';
    g.fillStyle = '#6b7585';
    g.font = '11px system-ui, sans-serif';
    g.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var y = bottom - (bottom - top) * i / 4;
      g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke();
      g.fillText(fmt(max * i / 4) + unit, 2, y + 4);
    }
    ['-10m', '-5m', 'now'].forEach(function (label, k) {
      var x = left + (right - left) * k / 2;
      g.fillText(label, Math.min(x, right - 22), h - 4);
    });
    var xOf = function (t) { return right - (right - left) * (now - t) / (WINDOW_S * 1000); };
    var yOf = function (v) { return bottom - (bottom - top) * (max ? v / max : 0); };
    lines.forEach(function (l) {
      g.strokeStyle = l.colour;
      g.lineWidth = 1.5;
      g.beginPath();
      var started = false;
      points.forEach(function (p) {
        if (now - p.t > WINDOW_S * 1000) { return; }
        var x = xOf(p.t), y = yOf(l.get(p));
        if (started) { g.lineTo(x, y); } else { g.moveTo(x, y); started = true; }
      });
      g.stroke();
    });
  }

  function niceMax(v) {
    if (!(v > 0)) { return 1; }
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (v <= steps[i] * p) { return steps[i] * p; }
    }
    return 10 * p;
  }

  function fmt(v) {
    if (v >= 100) { return Math.round(v).toString(); }
    if (v >= 10) { return v.toFixed(1); }
    return v.toFixed(2);
  }

  function formatDuration(s) {
    s = Math.floor(s);
    var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + (s % 60) + 's';
  }

  takeTokenFromURL();
  poll();
}());
