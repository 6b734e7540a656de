/// The dashboard's page, script and style, shipped inside the binary (no build step, no CDN).
///
/// The script builds every element with `createElement` and puts every value in with `append` or
/// `textContent` (never `innerHTML`), and links only to `#/...` routes and `/v1` paths it builds
/// with `encodeURIComponent`. The page has no inline script or style, so the
/// Content-Security-Policy can forbid both.
enum DashboardAssets {
    static let html = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Tern</title>
        <link rel="stylesheet" href="/ui/app.css">
        <script src="/ui/app.js" defer></script>
        </head>
        <body>
        <header id="top">
          <a class="brand" href="#/">Tern</a>
          <nav id="nav"></nav>
          <form id="find" class="find" hidden><input id="find-id" placeholder="Job id" aria-label="Job id" autocomplete="off"><button>Open</button></form>
          <span id="who" class="muted"></span>
        </header>
        <main id="main"><p class="muted">Loading…</p></main>
        <footer id="status" class="muted"></footer>
        </body>
        </html>
        """

    static let style = """
        :root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --red: #cf222e; --green: #1a7f37; --blue: #0969da; --amber: #9a6700; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); }
        header { display: flex; gap: 16px; align-items: center; padding: 10px 20px; border-bottom: 1px solid var(--line); background: var(--soft); flex-wrap: wrap; }
        header .brand { font-weight: 700; font-size: 18px; text-decoration: none; }
        nav a { margin-right: 12px; text-decoration: none; color: var(--blue); }
        nav a.current { color: var(--fg); font-weight: 600; }
        .find { display: flex; gap: 4px; margin-left: auto; }
        main { max-width: 1180px; margin: 0 auto; padding: 16px 20px 48px; }
        footer { max-width: 1180px; margin: 0 auto; padding: 0 20px 24px; font-size: 12px; }
        h1 { font-size: 20px; margin: 8px 0 12px; }
        h2 { font-size: 16px; margin: 20px 0 8px; }
        a { color: var(--blue); }
        table { border-collapse: collapse; width: 100%; margin: 8px 0; }
        th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { font-size: 12px; color: var(--muted); font-weight: 600; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        pre, code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
        pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px; overflow: auto; max-height: 400px; white-space: pre-wrap; word-break: break-all; }
        input, button, select { font: inherit; border: 1px solid var(--line); border-radius: 4px; padding: 4px 8px; background: #fff; }
        button { cursor: pointer; background: var(--soft); }
        button:hover { border-color: var(--muted); }
        button.danger { color: var(--red); }
        button.confirming { background: #ffebe9; border-color: var(--red); }
        .actions { display: flex; gap: 8px; margin: 8px 0; flex-wrap: wrap; }
        .tabs a { margin-right: 10px; }
        .tabs a.current { font-weight: 600; color: var(--fg); text-decoration: none; }
        .muted { color: var(--muted); }
        .error { color: var(--red); }
        .badge { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px; border: 1px solid var(--line); }
        .state-succeeded { color: var(--green); } .state-failed { color: var(--red); } .state-running { color: var(--blue); }
        .state-retrying, .state-cancelled, .state-expired { color: var(--amber); }
        .login { max-width: 420px; margin: 60px auto; display: flex; flex-direction: column; gap: 10px; }
        .login input { padding: 8px; }
        dl.fields { display: grid; grid-template-columns: 160px 1fr; gap: 4px 12px; margin: 8px 0; }
        dl.fields dt { color: var(--muted); }
        dl.fields dd { margin: 0; word-break: break-all; }
        progress { width: 240px; }
        ul.schema { margin: 2px 0; padding-left: 18px; }
        figure.chart { margin: 8px 0 16px; }
        figure.chart svg { width: 100%; height: 110px; background: var(--soft); border: 1px solid var(--line); border-radius: 6px; }
        figure.chart rect.ok { fill: var(--green); }
        figure.chart rect.bad { fill: var(--red); }
        figure.chart figcaption { font-size: 12px; margin-top: 4px; }
        """

    static let script = #"""
        'use strict';
        (function () {
          const STATES = ['queued', 'scheduled', 'running', 'retrying', 'waiting', 'succeeded', 'failed', 'cancelled', 'expired'];
          const app = { session: null, busy: false, hold: 0, pushed: false, rendered: 0, live: null };
          const main = document.getElementById('main');

          // Job data is hostile: control characters are shown escaped, and text is only ever text.
          function clean(value) {
            return String(value).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g,
              (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
          }
          function el(tag, attributes, ...children) {
            const node = document.createElement(tag);
            for (const [key, value] of Object.entries(attributes || {})) {
              if (value === null || value === undefined || value === false) continue;
              if (key === 'class') node.className = value;
              else if (key === 'onclick') node.addEventListener('click', value);
              else node.setAttribute(key, value);
            }
            for (const child of children.flat()) {
              if (child === null || child === undefined) continue;
              node.append(child instanceof Node ? child : clean(child));
            }
            return node;
          }
          const link = (hash, text) => el('a', { href: hash }, text);
          const jobLink = (id) => link('#/jobs/' + encodeURIComponent(id), id);
          const queueLink = (name) => link('#/queues/' + encodeURIComponent(name), name);
          // A limit as `10 per 1000 ms (burst 2), 3 at once`; '—' for none.
          const limitText = (l) => !l ? '—' : [l.rate ? l.rate.count + ' per ' + l.rate.per_ms + ' ms' + (l.burst > 1 ? ' (burst ' + l.burst + ')' : '') : null,
            l.concurrency ? l.concurrency + ' at once' : null].filter((x) => x).join(', ');
          const canOperate = () => app.session && (app.session.role === 'operator' || app.session.role === 'admin');
          const time = (text) => text ? new Date(text).toLocaleString() : '—';
          // A time in the given IANA zone (a schedule's), with the zone's name.
          function zoned(text, zone) {
            try {
              return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium', timeZone: zone || 'UTC', timeZoneName: 'short' })
                .format(new Date(text));
            } catch (e) { return time(text); }
          }
          // Enqueue→start percentiles as the API gives them: "at most" a bucket's bound.
          function waits(latency) {
            if (!latency || latency.jobs === 0) return '—';
            const bound = (ms) => ms === null ? '> 300 s' : '≤ ' + (ms < 1000 ? ms + ' ms' : ms / 1000 + ' s');
            return bound(latency.p50_ms) + ' / ' + bound(latency.p99_ms);
          }
          function age(ms) {
            if (ms === null || ms === undefined) return '—';
            const s = Math.max(0, Math.round(ms / 1000));
            return s < 60 ? s + ' s' : s < 3600 ? Math.round(s / 60) + ' min' : (s / 3600).toFixed(1) + ' h';
          }
          function table(headers, rows) {
            return el('table', {},
              el('thead', {}, el('tr', {}, headers.map((h) => el('th', { class: /^#|count|busy/.test(h) ? 'num' : null }, h)))),
              el('tbody', {}, rows.length ? rows.map((cells) => el('tr', {}, cells.map((c) => el('td', {}, c))))
                : el('tr', {}, el('td', { colspan: headers.length, class: 'muted' }, 'None'))));
          }
          function fields(pairs) {
            return el('dl', { class: 'fields' }, pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
          }
          const json = (value) => el('pre', {}, JSON.stringify(value, null, 2));

          // Jobs finished per minute as bars: succeeded below, failed on top; a tooltip per minute.
          function svg(tag, attributes, ...children) {
            const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
            for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, String(value));
            node.append(...children);
            return node;
          }
          function chart(minutes) {
            const width = 720, height = 110, step = width / Math.max(1, minutes.length);
            const peak = Math.max(1, ...minutes.map((m) => m.succeeded + m.failed));
            const scale = (count) => count / peak * (height - 10);
            const bars = minutes.map((m, i) => {
              const title = svg('title');
              title.textContent = clean(time(m.at) + ': ' + m.succeeded + ' succeeded, ' + m.failed + ' failed');
              const ok = scale(m.succeeded), bad = scale(m.failed), x = (i * step).toFixed(1), w = Math.max(1, step - 1).toFixed(1);
              return svg('g', {}, title,
                svg('rect', { x, y: (height - ok - bad).toFixed(1), width: w, height: ok.toFixed(1), class: 'ok' }),
                svg('rect', { x, y: (height - bad).toFixed(1), width: w, height: bad.toFixed(1), class: 'bad' }));
            });
            const succeeded = minutes.reduce((n, m) => n + m.succeeded, 0), failed = minutes.reduce((n, m) => n + m.failed, 0);
            return el('figure', { class: 'chart' },
              svg('svg', { viewBox: '0 0 ' + width + ' ' + height, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'Jobs finished per minute' }, ...bars),
              el('figcaption', { class: 'muted', 'data-succeeded': succeeded, 'data-failed': failed },
                'Last ' + minutes.length + ' minutes: ' + succeeded + ' succeeded, ' + failed + ' failed; peak ' + peak + ' a minute'));
          }
          // The per-minute counts of several queues, added up minute by minute.
          function sumMinutes(lists) {
            const byMinute = new Map();
            for (const list of lists) for (const m of list.minutes) {
              const sum = byMinute.get(m.at) || { at: m.at, succeeded: 0, failed: 0 };
              sum.succeeded += m.succeeded; sum.failed += m.failed;
              byMinute.set(m.at, sum);
            }
            return [...byMinute.values()].sort((a, b) => a.at < b.at ? -1 : 1).slice(-60);
          }
          const stateBadge = (state) => el('span', { class: 'badge state-' + state, 'data-state': state }, state);

          async function api(path, method, body) {
            const init = { method: method || 'GET', headers: {}, credentials: 'same-origin' };
            if (init.method !== 'GET') init.headers['X-CSRF-Token'] = app.session ? app.session.csrf : '';
            if (body !== undefined) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
            const response = await fetch(path, init);
            const text = await response.text();
            let data = null;
            try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
            if (!response.ok) {
              const error = new Error((data && (data.detail || data.title)) || ('HTTP ' + response.status));
              error.status = response.status;
              throw error;
            }
            return data;
          }

          // An action button; with confirm, the first click arms it and the second, within 5 s, acts.
          function action(label, run, options) {
            const confirm = options && options.confirm;
            const button = el('button', { class: (options && options.danger) ? 'danger' : null, 'data-action': label }, label);
            let armed = false;
            button.addEventListener('click', async () => {
              if (confirm && !armed) {
                armed = true; app.hold += 1;
                button.textContent = confirm; button.classList.add('confirming');
                setTimeout(() => { if (armed) { armed = false; app.hold -= 1; button.textContent = label; button.classList.remove('confirming'); } }, 5000);
                return;
              }
              if (armed) { armed = false; app.hold -= 1; }
              button.disabled = true;
              try { await run(); setStatus(label + ': done'); } catch (e) { setStatus(label + ': ' + e.message, true); }
              await render();
            });
            return button;
          }
          function setStatus(text, isError) {
            const status = document.getElementById('status');
            status.textContent = clean(text);
            status.className = isError ? 'error' : 'muted';
          }

          const views = {
            async overview() {
              const [queues, workers] = await Promise.all([api('/v1/queues'), api('/v1/workers')]);
              // The chart adds up the first 20 queues, to keep each redraw to a few requests.
              const charted = queues.queues.slice(0, 20);
              const throughput = await Promise.all(charted.map((q) => api('/v1/queues/' + encodeURIComponent(q.queue) + '/throughput?minutes=60')));
              const busy = workers.workers.reduce((n, w) => n + w.busy, 0);
              const slots = workers.workers.reduce((n, w) => n + w.concurrency, 0);
              return el('div', {},
                el('h1', {}, 'Jobs finished per minute'),
                chart(sumMinutes(throughput)),
                queues.queues.length > charted.length ? el('p', { class: 'muted' }, 'The chart adds up the first ' + charted.length + ' queues.') : null,
                el('h1', {}, 'Queues'),
                table(['Queue', 'queued', 'scheduled', 'running', 'waiting', 'failed', 'succeeded', 'cancelled', 'expired', 'oldest queued', 'wait p50 / p99 (1 h)', 'paused'],
                  queues.queues.map((q, i) => [queueLink(q.queue), q.pending, q.scheduled, q.running, q.waiting, q.failed, q.succeeded,
                    q.cancelled, q.expired, age(q.pending ? q.oldest_pending_ms : null), i < throughput.length ? waits(throughput[i].latency) : '—',
                    q.paused ? 'paused' : ''])),
                el('h2', {}, 'Workers'),
                el('p', { id: 'slots' }, workers.workers.length + ' workers, ' + busy + ' of ' + slots + ' slots busy'));
            },
            async queue(name, params) {
              const stateName = STATES.includes(params.get('state')) ? params.get('state') : 'queued';
              const cursor = params.get('cursor');
              const task = params.get('task');
              const base = '#/queues/' + encodeURIComponent(name);
              // Links keep the state and the task filter: `here({cursor})` and the like.
              const here = (change) => {
                const query = new URLSearchParams({ state: stateName });
                if (task) query.set('task', task);
                for (const [key, value] of Object.entries(change)) { if (value === null) query.delete(key); else query.set(key, value); }
                return base + '?' + query.toString();
              };
              app.taskNames = app.taskNames || (await api('/v1/tasks')).tasks.map((t) => t.name);
              const [queue, throughput, page] = await Promise.all([
                api('/v1/queues/' + encodeURIComponent(name)),
                api('/v1/queues/' + encodeURIComponent(name) + '/throughput?minutes=60'),
                api('/v1/queues/' + encodeURIComponent(name) + '/jobs?limit=20&state=' + stateName + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '')
                  + (task ? '&task=' + encodeURIComponent(task) : ''))]);
              const q = '/v1/queues/' + encodeURIComponent(name);
              return el('div', {},
                el('h1', {}, 'Queue ', name, ' ', queue.paused ? el('span', { class: 'badge', id: 'paused' }, 'paused') : null),
                canOperate() ? el('div', { class: 'actions' },
                  queue.paused ? action('Resume', () => api(q + '/resume', 'POST')) : action('Pause', () => api(q + '/pause', 'POST')),
                  action('Retry all failed', () => api(q + '/retry-failed', 'POST'), { confirm: 'Confirm: retry all failed', danger: true }),
                  stateName !== 'running' ? action('Purge ' + stateName, () => api(q + '/purge?state=' + stateName, 'POST'),
                    { confirm: 'Confirm: delete every ' + stateName + ' job', danger: true }) : null) : null,
                chart(throughput.minutes),
                queue.limits.length ? el('div', { id: 'limits' }, el('h2', {}, 'Limits (' + queue.throttled + ' jobs held back)'),
                  table(['scope', 'in force', 'declared', 'set by an operator'],
                    queue.limits.map((l) => [l.scope === 'queue' ? 'queue' : (l.scope === 'key' ? 'each key of ' : 'task ') + l.task,
                      limitText(l.effective), limitText(l.declared), l.set === 'none' ? 'no limit' : limitText(l.set)]))) : null,
                el('p', { id: 'latency' }, 'Wait from due to start, last hour (' + throughput.latency.jobs + ' jobs): p50 / p99 ' + waits(throughput.latency)),
                el('div', { class: 'tabs' }, STATES.map((s) => el('a', { href: here({ state: s, cursor: null }), class: s === stateName ? 'current' : null }, s))),
                el('div', { class: 'tabs', id: 'task-filter' }, 'Task: ',
                  el('a', { href: here({ task: null, cursor: null }), class: task ? null : 'current' }, 'all'), ' ',
                  app.taskNames.flatMap((t) => [el('a', { href: here({ task: t, cursor: null }), class: t === task ? 'current' : null }, t), ' '])),
                table(['Job', 'task', 'state', 'attempts', 'created', 'error'],
                  page.jobs.map((j) => [jobLink(j.id), j.task, j.throttled ? [stateBadge(j.state), ' held back'] : stateBadge(j.state),
                    j.attempts + ' / ' + j.max_attempts, time(j.created_at), j.error || ''])),
                el('div', { class: 'actions' },
                  cursor ? link(here({ cursor: null }), 'First page') : null,
                  page.next_cursor ? link(here({ cursor: page.next_cursor }), 'Next page') : null));
            },
            async job(id) {
              const job = await api('/v1/jobs/' + encodeURIComponent(id));
              const path = '/v1/jobs/' + encodeURIComponent(id);
              const progress = job.progress;
              return el('div', {},
                el('h1', {}, 'Job ', el('span', { class: 'mono' }, job.id), ' ', stateBadge(job.state)),
                canOperate() ? el('div', { class: 'actions' },
                  ['queued', 'scheduled', 'retrying', 'running', 'waiting'].includes(job.state) && !job.cancel_requested
                    ? action('Cancel', () => api(path + '/cancel', 'POST'), { danger: true }) : null,
                  ['failed', 'cancelled', 'expired'].includes(job.state) ? action('Retry', () => api(path + '/retry', 'POST')) : null,
                  ['scheduled', 'retrying'].includes(job.state) ? action('Run now', () => api(path + '/run', 'POST')) : null,
                  ['succeeded', 'failed', 'cancelled', 'expired'].includes(job.state)
                    ? action('Delete', async () => {
                      await api(path, 'DELETE');
                      location.hash = '#/queues/' + encodeURIComponent(job.queue) + '?state=' + job.state;
                    }, { confirm: 'Confirm: delete this job', danger: true }) : null) : null,
                fields([['task', job.task], ['queue', queueLink(job.queue)], ['state', job.state + (job.cancel_requested ? ' (cancel requested)' : '')],
                  ['attempts', job.attempts + ' of ' + job.max_attempts], ['priority', job.priority], ['worker', job.worker || '—'],
                  ['created', time(job.created_at)], ['due', time(job.due_at)], ['started', time(job.started_at)], ['finished', time(job.finished_at)],
                  ['schedule', job.schedule ? job.schedule.name + ' (tick ' + time(job.schedule.tick_at) + ')' : '—'],
                  ['workflow', job.depends_on.length || job.workflow
                    ? link('#/workflows/' + encodeURIComponent(job.id), job.workflow ? job.workflow + ' (this job ends it)' : 'this job and the jobs it waits for')
                    : '—'],
                  ['waits for', job.depends_on.length ? el('span', {}, job.depends_on.slice(0, 20).flatMap((d) => [jobLink(d), ' '])) : '—'],
                  ['waited for by', job.dependents.length ? el('span', {}, job.dependents.slice(0, 20).flatMap((d) => [jobLink(d), ' '])) : '—'],
                  ['progress', progress ? el('span', {}, el('progress', { max: '1', value: String(Math.min(1, Math.max(0, progress.value))) }), ' ',
                    String(Math.round(progress.value * 100)) + ' % ', progress.message || '') : '—']]),
                el('h2', {}, 'Input'), json(job.input),
                job.state === 'succeeded' ? [el('h2', {}, 'Result'), json(job.result)] : null,
                el('h2', {}, 'Errors'),
                table(['attempt', 'at', 'message'], (job.errors || []).map((e) => [e.attempt, time(e.at), el('pre', {}, e.message)])));
            },
            async workflow(id, params) {
              const cursor = params.get('cursor');
              const flow = await api('/v1/workflows/' + encodeURIComponent(id) + '?limit=50' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
              const here = (c) => '#/workflows/' + encodeURIComponent(id) + (c ? '?cursor=' + encodeURIComponent(c) : '');
              return el('div', {},
                el('h1', {}, 'Workflow ', el('span', { class: 'mono' }, flow.id), ' ', stateBadge(flow.state)),
                canOperate() && flow.state === 'running' ? el('div', { class: 'actions' },
                  action('Cancel workflow', () => api('/v1/workflows/' + encodeURIComponent(id) + '/cancel', 'POST'),
                    { confirm: 'Confirm: cancel every unfinished job', danger: true })) : null,
                fields([['kind', flow.kind], ['final job', jobLink(flow.id)],
                  ['progress', el('span', { id: 'workflow-progress' }, el('progress', { max: String(flow.jobs_total), value: String(flow.jobs_finished) }),
                    ' ', flow.jobs_finished + ' of ' + flow.jobs_total + ' jobs finished')],
                  ['current', flow.current.length ? el('span', {}, flow.current.slice(0, 20).flatMap((c) => [jobLink(c), ' '])) : '—'],
                  ['error', flow.error || '—']]),
                flow.state === 'succeeded' ? [el('h2', {}, 'Result'), json(flow.result)] : null,
                el('h2', {}, 'Jobs'),
                table(['Job', 'task', 'state', 'waits for', 'error'],
                  flow.jobs.map((j) => [jobLink(j.id), j.task, stateBadge(j.state),
                    j.depends_on.length === 1 ? jobLink(j.depends_on[0]) : j.depends_on.length ? j.depends_on.length + ' jobs' : '—', j.error || ''])),
                el('div', { class: 'actions' },
                  cursor ? link(here(null), 'First page') : null,
                  flow.next_cursor ? link(here(flow.next_cursor), 'Next page') : null));
            },
            async workers() {
              const data = await api('/v1/workers');
              const now = Date.now();
              // The jobs running now, by worker: the running jobs of the workers' queues (the first 20
              // queues, 100 jobs each).
              const queues = [...new Set(data.workers.flatMap((w) => w.queues))].slice(0, 20);
              const pages = await Promise.all(queues.map((q) => api('/v1/queues/' + encodeURIComponent(q) + '/jobs?state=running&limit=100')));
              const running = new Map();
              for (const job of pages.flatMap((p) => p.jobs)) {
                if (!running.has(job.worker)) running.set(job.worker, []);
                running.get(job.worker).push(job);
              }
              // Orders: quiet or resume, and stop (not for a supervised process: its supervisor would replace it).
              const order = (w, verb) => () => api('/v1/workers/' + encodeURIComponent(w.id) + '/' + verb, 'POST');
              const orders = (w) => !canOperate() || w.state === 'stopping' ? null : el('div', { class: 'actions' },
                w.state === 'quiet' ? action('Resume', order(w, 'resume')) : action('Quiet', order(w, 'quiet')),
                w.supervisor_pid === null ? action('Stop', order(w, 'stop'), { confirm: 'Confirm: stop this worker', danger: true }) : null);
              return el('div', {}, el('h1', {}, 'Workers'),
                table(['Worker', 'state', 'host', 'pid', 'queues', 'busy', 'processed', 'up', 'last seen', 'supervisor', 'running now', ''],
                  data.workers.map((w) => [w.id, w.state || 'running', w.host, w.pid, w.queues.join(', '), w.busy + ' / ' + w.concurrency, w.processed,
                    age(now - Date.parse(w.started_at)), age(now - Date.parse(w.last_seen_at)) + ' ago',
                    w.supervisor_pid === null ? (w.processes ? w.processes + ' processes' : '—') : 'pid ' + w.supervisor_pid,
                    el('div', { class: 'running' }, (running.get(w.id) || []).map((j) => el('div', {}, jobLink(j.id), ' ', j.task))),
                    orders(w)])));
            },
            async schedules() {
              const data = await api('/v1/schedules');
              const path = (s, verb) => '/v1/schedules/' + encodeURIComponent(s.name) + '/' + verb;
              return el('div', {}, el('h1', {}, 'Schedules'),
                table(['Schedule', 'task', 'when', 'time zone', 'next runs', 'last run', 'state', ''],
                  data.schedules.map((s) => [s.name, s.task, s.cron ? 'cron ' + s.cron : 'every ' + s.every_seconds + ' s', s.timezone || 'UTC',
                    el('div', {}, (s.next_runs || []).map((t) => el('div', {}, zoned(t, s.timezone)))),
                    s.last_run ? el('span', {}, time(s.last_run.tick_at), ' ', s.last_run.job ? jobLink(s.last_run.job) : '') : '—',
                    s.enabled ? 'active' : 'paused',
                    el('div', { class: 'actions' },
                      canOperate() && s.source === 'api' ? (s.enabled ? action('Pause', () => api(path(s, 'pause'), 'POST'))
                        : action('Resume', () => api(path(s, 'resume'), 'POST'))) : (s.source === 'api' ? '' : 'config file'),
                      canOperate() ? action('Run now', async () => {
                        const job = await api(path(s, 'run'), 'POST');
                        location.hash = '#/jobs/' + encodeURIComponent(job.id);
                      }) : null)])));
            },
            async tasks() {
              const data = await api('/v1/tasks');
              return el('div', {}, el('h1', {}, 'Tasks'), data.tasks.map((t) => el('section', {},
                el('h2', {}, t.name),
                fields([['queue', queueLink(t.queue)], ['priority', t.priority], ['max attempts', t.max_attempts],
                  ['time limits', (t.soft_time_limit_ms === null ? 'none' : t.soft_time_limit_ms + ' ms') + ' soft, ' + (t.hard_time_limit_ms === null ? 'none' : t.hard_time_limit_ms + ' ms') + ' hard'],
                  ['isolated', t.isolated ? 'yes' : 'no'], ['from', t.source + (t.workers && t.workers.length ? ' (' + t.workers.length + ' workers)' : '')],
                  ['input', schema(t.input_schema)], ['output', schema(t.output_schema)]]))));
            },
          };

          // A JSON Schema as a readable tree: types, properties and which are required.
          function schema(s, depth) {
            depth = depth || 0;
            if (!s || typeof s !== 'object' || depth > 6) return el('span', { class: 'mono' }, JSON.stringify(s));
            const type = Array.isArray(s.type) ? s.type.join(' | ') : (s.type || (s.enum ? 'one of ' + s.enum.map((v) => JSON.stringify(v)).join(', ') : s.anyOf || s.oneOf ? 'any of' : 'any'));
            const parts = [el('span', { class: 'mono' }, type)];
            if (s.properties) {
              const required = new Set(s.required || []);
              parts.push(el('ul', { class: 'schema' }, Object.entries(s.properties).map(([k, v]) =>
                el('li', {}, el('span', { class: 'mono' }, k), required.has(k) ? '' : ' (optional)', ': ', schema(v, depth + 1)))));
            }
            if (s.items) parts.push(el('ul', { class: 'schema' }, el('li', {}, 'items: ', schema(s.items, depth + 1))));
            for (const key of ['anyOf', 'oneOf']) {
              if (Array.isArray(s[key])) parts.push(el('ul', { class: 'schema' }, s[key].map((v) => el('li', {}, schema(v, depth + 1)))));
            }
            return el('span', {}, parts);
          }

          function route() {
            const hash = location.hash.replace(/^#/, '') || '/';
            const [path, query] = hash.split('?');
            const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
            const params = new URLSearchParams(query || '');
            if (parts[0] === 'queues' && parts[1]) return { name: 'queue', run: () => views.queue(parts[1], params) };
            if (parts[0] === 'jobs' && parts[1]) return { name: 'job', run: () => views.job(parts[1]) };
            if (parts[0] === 'workflows' && parts[1]) return { name: 'workflow', run: () => views.workflow(parts[1], params) };
            if (views[parts[0]] && !['queue', 'job', 'workflow'].includes(parts[0])) return { name: parts[0], run: () => views[parts[0]]() };
            return { name: 'overview', run: () => views.overview() };
          }

          function renderNav(current) {
            const nav = document.getElementById('nav');
            nav.replaceChildren(...[['#/', 'Overview', 'overview'], ['#/workers', 'Workers', 'workers'],
              ['#/schedules', 'Schedules', 'schedules'], ['#/tasks', 'Tasks', 'tasks']]
              .map(([hash, label, name]) => el('a', { href: hash, class: name === current ? 'current' : null }, label)));
            const who = document.getElementById('who');
            who.replaceChildren(app.session.name + ' (' + app.session.role + ') ',
              app.session.auth === 'tokens' ? el('button', { id: 'logout', onclick: logout }, 'Log out') : '');
            document.getElementById('find').hidden = false;
          }

          async function render() {
            if (!app.session || app.busy || app.hold > 0) return;
            app.busy = true;
            const current = route();
            current.hash = location.hash;
            try {
              const view = await current.run();
              // A confirm step armed while the page was fetched stays as it is: the next render
              // after it comes from the click or the timeout.
              if (app.hold > 0) return;
              renderNav(current.name);
              main.replaceChildren(view);
              main.setAttribute('data-view', current.name);
              main.setAttribute('data-route', current.hash);
              app.rendered = Date.now();
              connectLive();
              setStatus('Updated ' + new Date().toLocaleTimeString());
            } catch (e) {
              if (e.status === 401) { app.session = null; showLogin('Your session has ended: log in again.'); }
              else setStatus(e.message, true);
            } finally {
              app.busy = false;
            }
          }

          function showLogin(message) {
            document.getElementById('nav').replaceChildren();
            document.getElementById('who').replaceChildren();
            document.getElementById('find').hidden = true;
            const input = el('input', { id: 'token', type: 'password', placeholder: 'API token or JWT', autocomplete: 'off', 'aria-label': 'API token or JWT' });
            const error = el('p', { class: 'error', id: 'login-error' }, message || '');
            const form = el('form', { class: 'login', id: 'login' }, el('h1', {}, 'Log in to Tern'),
              el('p', { class: 'muted' }, 'Paste an API token or a JWT. The dashboard keeps a session cookie, never the token.'),
              input, el('button', { type: 'submit' }, 'Log in'), error);
            form.addEventListener('submit', async (event) => {
              event.preventDefault();
              try {
                app.session = await api('/ui/login', 'POST', { token: input.value });
                input.value = '';
                await render();
              } catch (e) {
                error.textContent = clean(e.message);
              }
            });
            main.replaceChildren(form);
            main.setAttribute('data-view', 'login');
            input.focus();
          }

          async function logout() {
            try { await api('/ui/logout', 'POST'); } catch (e) { /* the cookie is cleared either way */ }
            if (app.live) { app.live.close(); app.live = null; app.pushed = false; }
            app.session = null;
            showLogin('Logged out.');
          }

          document.getElementById('find').addEventListener('submit', (event) => {
            event.preventDefault();
            const id = document.getElementById('find-id').value.trim();
            if (id) location.hash = '#/jobs/' + encodeURIComponent(id);
          });
          window.addEventListener('hashchange', render);

          // Live: /ui/live says when jobs change (at most once a second) and the view is read again
          // then, and every 5 s for what is not pushed (claims, workers). Without pushes (the stream
          // is down, or the server has none), the view is read every second.
          function connectLive() {
            if (app.live || !window.EventSource || Date.now() < (app.liveRetryAt || 0)) return;
            app.live = new EventSource('/ui/live');
            app.live.addEventListener('hello', (event) => {
              try { app.pushed = JSON.parse(event.data).pushed === true; } catch (e) { app.pushed = false; }
              document.body.setAttribute('data-pushed', String(app.pushed));
            });
            app.live.addEventListener('change', () => { if (document.visibilityState === 'visible') render(); });
            app.live.addEventListener('error', () => {
              app.pushed = false;
              document.body.setAttribute('data-pushed', 'false');
              // A refused stream (logged out, or too many waiters) is not retried by the browser.
              if (app.live && app.live.readyState === EventSource.CLOSED) { app.live = null; app.liveRetryAt = Date.now() + 30000; }
            });
          }
          setInterval(() => {
            if (document.visibilityState !== 'visible') return;
            if (!app.pushed || Date.now() - app.rendered >= 5000) render();
          }, 1000);
          api('/ui/session').then((session) => { app.session = session; render(); })
            .catch((e) => showLogin(e.status === 401 ? '' : e.message));
        })();
        """#
}
