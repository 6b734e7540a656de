/// The HTML page `/docs` serves: renders `/openapi.json` in the browser with no external files (no CDN).
///
/// One self-contained document: inline CSS and JavaScript, no scripts, fonts or images from anywhere, so it works
/// offline. It fetches `/openapi.json` from its own origin and shows each operation grouped by tag, with its
/// parameters, request body and responses, schemas as trees (`$ref`s resolved, reference cycles cut), and a form to
/// try it. A bearer token typed at the top is kept in `sessionStorage` and sent as `Authorization: Bearer …`.
/// Everything taken from the document or from responses enters the DOM as text (`textContent`, `createElement`).
enum DocsPage {
    /// The page, as UTF-8 HTML.
    static let html: String = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
    <title>API documentation</title>
    <style>
      :root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --red: #cf222e; }
      * { box-sizing: border-box; }
      body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); }
      main { max-width: 980px; margin: 0 auto; padding: 24px 16px 64px; }
      h1 { margin: 0; font-size: 24px; }
      h2 { margin: 28px 0 8px; padding-bottom: 4px; font-size: 18px; border-bottom: 1px solid var(--line); }
      h4 { margin: 14px 0 4px; font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
      a { color: inherit; }
      code, pre, textarea, .tree, .path, .method { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
      input, textarea, button { font: inherit; border: 1px solid var(--line); border-radius: 4px; padding: 4px 8px; background: #fff; }
      textarea { width: 100%; min-height: 140px; font-size: 12px; }
      button { cursor: pointer; background: var(--soft); }
      button:hover { border-color: var(--muted); }
      .muted { color: var(--muted); }
      .text { white-space: pre-wrap; }
      .error { color: var(--red); }
      .bar { display: flex; gap: 8px; align-items: center; margin: 16px 0; padding: 10px 12px; background: var(--soft); border: 1px solid var(--line); border-radius: 6px; }
      .bar input { flex: 1; }
      details.op { margin: 8px 0; border: 1px solid var(--line); border-radius: 6px; }
      details.op > summary { display: flex; gap: 10px; align-items: center; padding: 8px 12px; cursor: pointer; }
      details.op[open] > summary { background: var(--soft); border-bottom: 1px solid var(--line); }
      .op-body { padding: 4px 12px 12px; }
      .method { min-width: 60px; padding: 2px 6px; border-radius: 4px; color: #fff; background: #6e7781; font-weight: 600; text-align: center; text-transform: uppercase; }
      .get { background: #0969da; } .post { background: #1a7f37; } .delete { background: #cf222e; } .put, .patch { background: #9a6700; }
      .path { font-weight: 600; word-break: break-all; }
      .deprecated .path { text-decoration: line-through; }
      .badge { padding: 0 6px; border: 1px solid var(--line); border-radius: 10px; font-size: 11px; color: var(--muted); }
      table { width: 100%; border-collapse: collapse; }
      th, td { padding: 4px 8px; text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); }
      .tree ul { margin: 0; padding-left: 18px; list-style: none; border-left: 1px dotted var(--line); }
      .tree > ul { padding-left: 0; border: 0; }
      .type { color: #8250df; } .ref { color: #0550ae; } .req { color: var(--red); font-weight: 600; }
      .try { margin-top: 14px; padding: 10px 12px; background: var(--soft); border-radius: 6px; }
      .try label { display: flex; gap: 8px; align-items: center; margin: 4px 0; }
      .try label span { min-width: 160px; }
      pre.out { max-height: 420px; margin: 8px 0 0; padding: 8px; overflow: auto; white-space: pre-wrap; background: #fff; border: 1px solid var(--line); border-radius: 4px; }
    </style>
    </head>
    <body>
    <main>
      <header id="info"><h1>API documentation</h1><p class="muted">Loading <a href="/openapi.json">/openapi.json</a>…</p></header>
      <div class="bar">
        <label for="token">Bearer token</label>
        <input id="token" type="password" autocomplete="off" placeholder="sent as Authorization: Bearer … (kept for this tab only)">
        <button id="clear-token" type="button">Clear</button>
      </div>
      <div id="operations"></div>
    </main>
    <script>
    "use strict";
    const SPEC_URL = "/openapi.json";
    const TOKEN_KEY = "tern.docs.token";
    const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    let spec = {};
    // Requests go to this origin; a server url that is a path ("/api") becomes their prefix, an absolute one is ignored.
    let base = "";

    // el("div", {class: "x"}, child, "text"): strings become text nodes, so nothing from the document is parsed as HTML.
    function el(tag, attributes, ...children) {
      const node = document.createElement(tag);
      for (const [key, value] of Object.entries(attributes || {})) {
        if (value === undefined || value === null || value === false) continue;
        if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
      for (const child of children.flat()) {
        if (child === undefined || child === null || child === false) continue;
        node.append(child instanceof Node ? child : String(child));
      }
      return node;
    }

    // A local JSON pointer ("#/components/schemas/Job"); other documents are not fetched.
    function pointer(ref) {
      if (!ref.startsWith("#/")) return undefined;
      return ref.slice(2).split("/").reduce((node, part) =>
        node == null ? undefined : node[decodeURIComponent(part).replace(/~1/g, "/").replace(/~0/g, "~")], spec);
    }

    // Follows "$ref"s; 3.1 siblings of a "$ref" (such as description) win over the target's.
    // `seen` holds the refs already open above this point: meeting one again is a cycle, reported rather than followed.
    function deref(value, seen = new Set()) {
      let node = value && typeof value === "object" ? value : {};
      let extra = {}, ref = null;
      const refs = [];
      while (typeof node.$ref === "string") {
        ref = ref || node.$ref;
        if (seen.has(node.$ref) || refs.includes(node.$ref)) return { node: {}, ref, refs, cycle: true };
        refs.push(node.$ref);
        const { $ref, ...rest } = node;
        extra = { ...rest, ...extra };
        node = pointer($ref) || { description: "unresolved reference " + $ref };
      }
      return { node: { ...node, ...extra }, ref, refs, cycle: false, seen: new Set([...seen, ...refs]) };
    }

    const refName = (ref) => decodeURIComponent(ref.split("/").pop());

    function typeName(schema) {
      let type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
      if (!type && schema.properties) type = "object";
      if (!type && schema.oneOf) type = "one of";
      if (!type && schema.anyOf) type = "any of";
      if (!type && schema.allOf) type = "all of";
      if (schema.nullable) type += " | null";
      return (type || "any") + (schema.format ? " <" + schema.format + ">" : "");
    }

    function constraints(schema) {
      const notes = [];
      const show = (value) => JSON.stringify(value);
      if (Array.isArray(schema.enum)) notes.push("one of " + schema.enum.map(show).join(", "));
      if (schema.const !== undefined) notes.push("= " + show(schema.const));
      for (const [key, label] of [["minimum", "≥"], ["exclusiveMinimum", ">"], ["maximum", "≤"], ["exclusiveMaximum", "<"],
        ["minLength", "min length"], ["maxLength", "max length"], ["minItems", "min items"], ["maxItems", "max items"],
        ["minProperties", "min properties"], ["maxProperties", "max properties"], ["pattern", "pattern"], ["default", "default"]]) {
        if (schema[key] !== undefined && typeof schema[key] !== "boolean") notes.push(label + " " + show(schema[key]));
      }
      if (schema.uniqueItems) notes.push("unique items");
      if (schema.readOnly) notes.push("read-only");
      if (schema.writeOnly) notes.push("write-only");
      if (schema.deprecated) notes.push("deprecated");
      return notes;
    }

    // The discriminator value that selects `variant`: from the mapping, or the schema's name when there is none.
    function discriminatorValue(discriminator, variant) {
      if (!discriminator || !variant || typeof variant.$ref !== "string") return undefined;
      const mapping = discriminator.mapping || {};
      const hit = Object.keys(mapping).find((key) => mapping[key] === variant.$ref || mapping[key] === refName(variant.$ref));
      return hit !== undefined ? hit : refName(variant.$ref);
    }

    function schemaTree(schema) {
      return el("div", { class: "tree" }, el("ul", {}, schemaItem(null, false, schema, new Set())));
    }

    function schemaItem(name, required, schema, seen) {
      const line = el("div", {}, name === null ? null : [el("code", {}, name), required ? el("span", { class: "req", title: "required" }, "*") : null, ": "]);
      const item = el("li", {}, line);
      const { node, ref, cycle, seen: inner } = deref(schema, seen);
      if (ref) line.append(el("span", { class: "ref" }, refName(ref)), " ");
      if (cycle) { line.append(el("span", { class: "muted" }, "(recursive, shown above)")); return item; }
      line.append(el("span", { class: "type" }, typeName(node)));
      for (const note of constraints(node)) line.append(" ", el("span", { class: "muted" }, "· " + note));
      if (node.description) line.append(el("span", { class: "muted text" }, " — " + node.description));
      const children = [];
      const requiredNames = new Set(Array.isArray(node.required) ? node.required : []);
      for (const [key, sub] of Object.entries(node.properties || {})) children.push(schemaItem(key, requiredNames.has(key), sub, inner));
      if (node.additionalProperties && typeof node.additionalProperties === "object") {
        children.push(schemaItem("[key: string]", false, node.additionalProperties, inner));
      }
      if (node.items && typeof node.items === "object") children.push(schemaItem("[item]", false, node.items, inner));
      for (const kind of ["oneOf", "anyOf", "allOf"]) {
        if (!Array.isArray(node[kind])) continue;
        const discriminator = kind === "allOf" ? null : node.discriminator;
        const group = el("li", {}, el("div", { class: "muted" }, kind + (discriminator ? " (discriminator: " + discriminator.propertyName + ")" : "")));
        const variants = node[kind].map((variant, index) => {
          const value = discriminatorValue(discriminator, variant);
          return schemaItem(value !== undefined ? discriminator.propertyName + " = " + JSON.stringify(value) : "#" + (index + 1), false, variant, inner);
        });
        group.append(el("ul", {}, variants));
        children.push(group);
      }
      if (children.length) item.append(el("ul", {}, children));
      return item;
    }

    // An example value for a schema: its own example, const, default or first enum value; otherwise built from its type.
    // Objects get their required properties (all of them when none is required).
    function example(schema, seen = new Set(), depth = 0) {
      const { node, cycle, seen: inner } = deref(schema, seen);
      if (cycle || depth > 8) return null;
      if (node.example !== undefined) return node.example;
      if (Array.isArray(node.examples) && node.examples.length) return node.examples[0];
      for (const key of ["const", "default"]) if (node[key] !== undefined) return node[key];
      if (Array.isArray(node.enum) && node.enum.length) return node.enum[0];
      const variants = node.oneOf || node.anyOf;
      if (Array.isArray(variants) && variants.length) {
        const value = example(variants[0], inner, depth + 1);
        const tag = discriminatorValue(node.discriminator, variants[0]);
        if (tag !== undefined && value && typeof value === "object") value[node.discriminator.propertyName] = tag;
        return value;
      }
      if (Array.isArray(node.allOf)) return Object.assign({}, ...node.allOf.map((part) => example(part, inner, depth + 1)).filter((part) => part && typeof part === "object"));
      const type = Array.isArray(node.type) ? node.type.find((t) => t !== "null") : node.type;
      if (type === "object" || (!type && node.properties)) {
        const properties = node.properties || {};
        const wanted = Array.isArray(node.required) && node.required.length ? node.required : Object.keys(properties);
        const result = {};
        for (const key of wanted) {
          if (!deref(properties[key], inner).node.readOnly) result[key] = example(properties[key], inner, depth + 1);
        }
        return result;
      }
      if (type === "array") return node.items ? [example(node.items, inner, depth + 1)] : [];
      if (type === "integer" || type === "number") {
        if (node.minimum !== undefined) return node.minimum;
        if (node.exclusiveMinimum !== undefined && typeof node.exclusiveMinimum === "number") return node.exclusiveMinimum + 1;
        return node.maximum !== undefined && node.maximum < 0 ? node.maximum : 0;
      }
      if (type === "boolean") return false;
      if (type === "string") {
        if (node.format === "date-time") return new Date().toISOString();
        if (node.format === "date") return new Date().toISOString().slice(0, 10);
        if (node.format === "uuid") return "00000000-0000-0000-0000-000000000000";
        return "string";
      }
      return null;
    }

    // The JSON media type of a content map, else its first one.
    function mediaOf(content) {
      const types = Object.keys(content || {});
      const type = types.find((t) => /[\/+]json\b/.test(t)) || types[0];
      return type ? { type, media: content[type] || {} } : null;
    }

    function readToken() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; } }
    function writeToken(value) { try { value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage off */ } }

    function operationView(path, method, op, pathParameters) {
      const merged = new Map();
      for (const raw of [...pathParameters, ...(op.parameters || [])]) {
        const parameter = deref(raw).node;
        merged.set(parameter.in + ":" + parameter.name, parameter);
      }
      const parameters = [...merged.values()];
      const security = op.security || spec.security || [];
      const needsAuth = security.some((requirement) => Object.keys(requirement).length > 0);
      const body = el("div", { class: "op-body" });
      const section = el("details", { class: "op" + (op.deprecated ? " deprecated" : "") },
        el("summary", {}, el("span", { class: "method " + method }, method), el("span", { class: "path" }, path),
          el("span", { class: "muted" }, op.summary || ""), op.deprecated ? el("span", { class: "badge" }, "deprecated") : null,
          needsAuth ? el("span", { class: "badge" }, "auth") : null),
        body);
      if (op.description) body.append(el("p", { class: "text" }, op.description));
      if (op.operationId) body.append(el("p", { class: "muted" }, "operationId ", el("code", {}, op.operationId)));

      if (parameters.length) {
        body.append(el("h4", {}, "Parameters"), el("table", {},
          el("tr", {}, ["Name", "In", "Required", "Schema", "Description"].map((title) => el("th", {}, title))),
          parameters.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, p.required ? "yes" : "no"),
            el("td", {}, p.schema ? schemaTree(p.schema) : ""), el("td", { class: "text" }, p.description || "")))));
      }
      const requestBody = op.requestBody ? deref(op.requestBody).node : null;
      const request = requestBody ? mediaOf(requestBody.content) : null;
      if (requestBody) {
        body.append(el("h4", {}, "Request body" + (request ? " (" + request.type + ")" : "") + (requestBody.required ? ", required" : "")));
        if (requestBody.description) body.append(el("p", { class: "text" }, requestBody.description));
        if (request && request.media.schema) body.append(schemaTree(request.media.schema));
      }
      const responses = Object.entries(op.responses || {});
      if (responses.length) {
        body.append(el("h4", {}, "Responses"), el("table", {}, responses.map(([status, raw]) => {
          const response = deref(raw).node;
          const content = mediaOf(response.content);
          return el("tr", {}, el("td", {}, el("code", {}, status)),
            el("td", {}, el("div", { class: "text" }, response.description || ""),
              content ? el("div", { class: "muted" }, content.type) : null,
              content && content.media.schema ? schemaTree(content.media.schema) : null));
        })));
      }
      body.append(tryForm(path, method, parameters, request));
      return section;
    }

    function tryForm(path, method, parameters, request) {
      const inputs = parameters.filter((p) => ["path", "query", "header"].includes(p.in)).map((p) => {
        const input = el("input", { placeholder: p.schema ? typeName(deref(p.schema).node) : "" });
        return { parameter: p, input, label: el("label", {}, el("span", {}, el("code", {}, p.name), " (" + p.in + (p.required ? ", required" : "") + ")"), input) };
      });
      const canHaveBody = !["get", "head"].includes(method);
      const textarea = request && canHaveBody ? el("textarea", { spellcheck: "false" }) : null;
      if (textarea) {
        const media = request.media;
        const sample = media.example !== undefined ? media.example : media.schema ? example(media.schema) : {};
        textarea.value = JSON.stringify(sample, null, 2);
      }
      const output = el("pre", { class: "out", hidden: true });
      const button = el("button", { type: "button" }, "Send");
      button.addEventListener("click", async () => {
        output.hidden = false;
        output.className = "out";
        const show = (text, isError) => { output.textContent = text; if (isError) output.className = "out error"; };
        const missing = inputs.filter(({ parameter, input }) => parameter.required && input.value === "").map(({ parameter }) => parameter.name);
        if (missing.length) return show("Missing required parameter(s): " + missing.join(", "), true);
        let url = path.replace(/\{([^}]+)\}/g, (whole, name) => {
          const found = inputs.find(({ parameter }) => parameter.in === "path" && parameter.name === name);
          return found ? encodeURIComponent(found.input.value) : whole;
        });
        const query = new URLSearchParams();
        const headers = { Accept: "application/json, */*" };
        for (const { parameter, input } of inputs) {
          if (input.value === "") continue;
          if (parameter.in === "query") query.append(parameter.name, input.value);
          if (parameter.in === "header") headers[parameter.name] = input.value;
        }
        if (query.toString()) url += "?" + query;
        const token = readToken();
        if (token) headers.Authorization = "Bearer " + token;
        const init = { method: method.toUpperCase(), headers };
        if (textarea && textarea.value.trim() !== "") {
          try { JSON.parse(textarea.value); } catch (error) { return show("The body is not valid JSON: " + error.message, true); }
          headers["Content-Type"] = request.type;
          init.body = textarea.value;
        }
        show(init.method + " " + url + " …");
        try {
          const started = performance.now();
          const response = await fetch(base + url, init);
          const text = await response.text();
          let pretty = text;
          try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON: shown as is */ }
          const headerLines = [...response.headers].map(([key, value]) => key + ": " + value).join("\n");
          show(init.method + " " + url + "\n" + response.status + " " + response.statusText + " · " + Math.round(performance.now() - started) + " ms\n"
            + headerLines + "\n\n" + pretty, !response.ok);
        } catch (error) {
          show("Request failed: " + error.message, true);
        }
      });
      return el("div", { class: "try" }, el("strong", {}, "Try it"), inputs.map(({ label }) => label),
        textarea ? [el("div", { class: "muted" }, "Body (" + request.type + ")"), textarea] : null, el("div", {}, button), output);
    }

    function render() {
      const info = spec.info || {};
      document.title = (info.title || "API") + " documentation";
      const header = document.getElementById("info");
      header.replaceChildren(el("h1", {}, info.title || "API", " ", el("span", { class: "badge" }, info.version || "")),
        info.description ? el("p", { class: "text muted" }, info.description) : null,
        el("p", { class: "muted" }, "OpenAPI " + (spec.openapi || "?") + " · ", el("a", { href: SPEC_URL }, SPEC_URL)));
      const server = (spec.servers || [])[0];
      base = server && typeof server.url === "string" && server.url.startsWith("/") ? server.url.replace(/\/$/, "") : "";

      // Groups in the order of the top-level `tags`, then in order of first use; an operation sits under its first tag.
      const groups = new Map((spec.tags || []).map((tag) => [tag.name, { tag, operations: [] }]));
      for (const [path, rawItem] of Object.entries(spec.paths || {})) {
        const item = deref(rawItem).node;
        for (const method of METHODS) {
          if (!item[method]) continue;
          const name = (item[method].tags || [])[0] || "default";
          if (!groups.has(name)) groups.set(name, { tag: { name }, operations: [] });
          groups.get(name).operations.push(operationView(path, method, item[method], item.parameters || []));
        }
      }
      const container = document.getElementById("operations");
      container.replaceChildren(...[...groups.values()].filter((group) => group.operations.length).map((group) =>
        el("section", {}, el("h2", {}, group.tag.name), group.tag.description ? el("p", { class: "text muted" }, group.tag.description) : null,
          group.operations)));
    }

    const tokenInput = document.getElementById("token");
    tokenInput.value = readToken();
    tokenInput.addEventListener("input", () => writeToken(tokenInput.value.trim()));
    document.getElementById("clear-token").addEventListener("click", () => { tokenInput.value = ""; writeToken(""); });

    fetch(SPEC_URL, { headers: { Accept: "application/json" } })
      .then((response) => { if (!response.ok) throw new Error(response.status + " " + response.statusText); return response.json(); })
      .then((loaded) => { spec = loaded; render(); })
      .catch((error) => {
        document.getElementById("info").replaceChildren(el("h1", {}, "API documentation"),
          el("p", { class: "error" }, "Could not load " + SPEC_URL + ": " + error.message));
      });
    </script>
    </body>
    </html>
    """#
}
