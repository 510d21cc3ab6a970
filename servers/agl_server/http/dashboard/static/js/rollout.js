// One rollout: its attempts, LLM calls (messages, token counts, reward), rewards and span timeline.
import { api, badge, fmtDuration, fmtReward, fmtTime, h, kv, newest, show, showError, state, text, throttle } from "./util.js";

function timelineView(spans) {
  if (!spans.length) return h("div", { class: "empty" }, "no spans");
  const t0 = Math.min(...spans.map((s) => s.start_ms));
  const t1 = Math.max(...spans.map((s) => s.end_ms));
  const width = Math.max(t1 - t0, 1e-6);
  const box = h("div", { class: "timeline", "data-testid": "timeline" });
  for (const span of spans) {
    const attrs = h("pre", { class: "tl-attrs mono", hidden: true }, text({
      span_id: span.span_id, attempt_id: span.attempt_id, status: span.status,
      status_message: span.status_message || undefined, attributes: span.attributes }));
    const left = ((span.start_ms - t0) / width) * 100;
    const barWidth = ((span.end_ms - span.start_ms) / width) * 100;
    const row = h("div", { class: "tl-row", "data-testid": "span-row", "data-kind": span.kind, title: span.name,
        onclick: () => { attrs.hidden = !attrs.hidden; } },
      h("span", { class: "tl-name", style: `padding-left:${span.depth * 14}px` }, span.name),
      h("div", { class: "tl-track" }, h("div", { class: "tl-bar " + span.kind,
        style: `left:${left.toFixed(3)}%;width:${barWidth.toFixed(3)}%` })),
      h("span", { class: "tl-dur" }, fmtDuration(span.end_ms - span.start_ms)));
    box.append(row, attrs);
  }
  return box;
}

function messageView(message) {
  const role = message.role || "message";
  let content = message.content;
  if (Array.isArray(content)) content = content.map((part) => part.text ?? text(part)).join("\n");
  const extra = message.tool_calls ? "\n" + text(message.tool_calls) : "";
  return h("div", { class: "msg " + role, "data-testid": "message", "data-role": role },
    h("div", { class: "role" }, role), h("pre", {}, text(content) + extra));
}

function llmCallView(call, index) {
  return h("div", { class: "llm-call", "data-testid": "llm-call" },
    h("div", { class: "meta" },
      h("b", {}, `call ${index + 1}`),
      call.model ? h("span", {}, "model ", h("span", { class: "mono" }, call.model)) : null,
      h("span", { "data-testid": "input-tokens" }, `input tokens ${call.input_tokens ?? "?"}`),
      h("span", { "data-testid": "output-tokens" }, `output tokens ${call.output_tokens ?? "?"}`),
      h("span", {}, `token ids ${call.prompt_token_ids}/${call.response_token_ids}`),
      h("span", { "data-testid": "call-reward" }, `reward ${call.reward === null ? "none" : fmtReward(call.reward)}`),
      call.finish_reason ? h("span", {}, `finish ${call.finish_reason}`) : null,
      h("span", { class: "mono" }, `attempt ${call.attempt_id}`)),
    ...call.messages.map(messageView),
    ...call.response.map(messageView));
}

export async function pageRollout(rolloutId) {
  const request = newest();
  show(h("h2", {}, "Rollout ", h("span", { class: "mono" }, rolloutId)), h("div", { class: "empty" }, "loading…"));
  async function load() {
    const current = request();
    let r;
    try { r = await api("/api/rollouts/" + encodeURIComponent(rolloutId)); } catch (e) {
      if (current()) { show(h("h2", {}, "Rollout")); showError(e); }
      return;
    }
    if (!current()) return;  // a newer reload is under way, or the user has moved to another page
    const attempts = h("table", { "data-testid": "attempts" },
      h("thead", {}, h("tr", {}, ["#", "attempt", "status", "worker", "started", "ended", "last heartbeat"].map((c) => h("th", {}, c)))),
      h("tbody", {}, r.attempts.map((a) => h("tr", {},
        h("td", { class: "num" }, String(a.sequence_id)), h("td", { class: "mono" }, a.attempt_id), h("td", {}, badge(a.status)),
        h("td", { class: "mono" }, a.worker_id || ""), h("td", {}, fmtTime(a.start_time)), h("td", {}, fmtTime(a.end_time)),
        h("td", {}, fmtTime(a.last_heartbeat_time))))));
    const rewards = r.rewards.length ? h("table", { "data-testid": "rewards" },
      h("thead", {}, h("tr", {}, ["attempt", "time", "values"].map((c) => h("th", {}, c)))),
      h("tbody", {}, r.rewards.map((w) => h("tr", {}, h("td", { class: "mono" }, w.attempt_id),
        h("td", {}, fmtTime(w.time_ms / 1000)), h("td", { class: "mono" }, text(w.values)))))) : h("div", { class: "empty" }, "no rewards");
    const truncated = r.span_total > r.spans.length
      ? h("div", { class: "empty" }, `showing ${r.spans.length} of ${r.span_total} spans`) : null;
    show(
      h("h2", {}, "Rollout ", h("span", { class: "mono", "data-testid": "rollout-id" }, r.rollout_id), " ", badge(r.status)),
      kv([["reward", h("b", { "data-testid": "rollout-reward" }, r.reward === null ? "none" : fmtReward(r.reward))],
        ["resources", h("span", { class: "mono" }, (r.resources_id || "") + (r.resources_version ? ` (version ${r.resources_version})` : ""))],
        ["mode", r.mode || ""], ["started", fmtTime(r.start_time)], ["ended", fmtTime(r.end_time)],
        ["input", h("pre", { class: "mono" }, text(r.input))],
        ["config", h("pre", { class: "mono" }, text(r.config))]]),
      h("h3", {}, `Attempts (${r.attempts.length})`), attempts,
      h("h3", {}, `LLM calls (${r.llm_calls.length})`),
      r.llm_calls.length ? h("div", { "data-testid": "llm-calls" }, r.llm_calls.map(llmCallView)) : h("div", { class: "empty" }, "no LLM calls"),
      h("h3", {}, "Rewards"), rewards,
      h("h3", {}, `Spans (${r.span_total})`), truncated, timelineView(r.spans));
  }
  const reload = throttle(load, 300);
  state.onRolloutEvent = (event) => { if (event.rollout_id === rolloutId) reload(); };
  await load();
}
