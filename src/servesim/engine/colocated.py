"""A colocated instance: prefill and decode on the same GPUs, with paged KV and preemption.

Policies (decided at every iteration boundary):
- 'vllm': if the head of the waiting queue can start, run a prefill iteration of waiting
  requests (FCFS, up to L_m prompt tokens, a longer prompt alone); otherwise a decode iteration
  of every running request. Prefill and decode never share an iteration.
- 'chunked' (Sarathi): every iteration carries all running decodes plus prompt chunks (FCFS,
  the oldest unfinished prompt first) filling the token budget `chunk_tokens`.

KV memory is counted in tokens: a running request holds its context, a prompt in prefill holds
its whole prompt from its first chunk. A prompt starts only if, after it, every running request
can still decode one more token. When decode growth would overflow the cache, the most recently
admitted running requests are preempted (recompute: their KV is dropped, and they go back to
the head of the queue to prefill prompt + generated tokens again).

Between boundaries where something can change -- the next finish, the KV running out, an
arrival at an empty queue -- a pure decode stretch advances in closed form (see batch.py).
"""

from __future__ import annotations

from collections import deque

from servesim.engine.batch import DecodeBatch
from servesim.engine.instance import Instance
from servesim.engine.records import RecordBuffer
from servesim.latency.base import LatencyModel

IDLE, PREFILL, DECODE, MIXED = 0, 1, 2, 3


class ColocatedInstance(Instance):
    """Colocated instance running the 'vllm' or the 'chunked' policy."""

    __slots__ = (
        "batch",
        "chunked",
        "fast",
        "generated",
        "held",
        "max_seqs",
        "max_tokens",
        "num_preempted",
        "partial",
        "plan",
        "plan_s",
        "prefilling",
        "state",
        "target",
        "waiting",
    )

    def __init__(
        self,
        index: int,
        latency: LatencyModel,
        kv_capacity_tokens: int,
        max_seqs: int,
        max_tokens: int,
        chunked: bool,
        rec: RecordBuffer,
        fast: bool,
    ) -> None:
        super().__init__(index, "colocated", latency, kv_capacity_tokens, rec)
        self.batch = DecodeBatch(latency)
        self.chunked = chunked
        self.fast = fast
        self.max_seqs = max_seqs
        self.max_tokens = max_tokens  # L_m ('vllm') or the chunk budget ('chunked')
        self.waiting: deque[int] = deque()  # not started (new or preempted), FCFS
        self.generated: dict[int, int] = {}  # tokens generated so far by preempted requests
        self.held = 0  # KV of prompts in prefill
        self.prefilling: list[int] = []  # 'vllm': the prefill iteration in progress
        self.partial: list[list[int]] = []  # 'chunked': [request, tokens done, prompt tokens]
        self.plan: list[tuple[list[int], int]] = []  # 'chunked': chunks of the iteration
        self.plan_s = 0.0
        self.state = IDLE
        self.target = -1
        self.num_preempted = 0

    def kv_used(self, now_s: float | None = None) -> int:
        return self.batch.sum_ctx + self.held

    def queue_depth(self) -> int:
        return len(self.waiting)

    def _note_kv(self) -> None:
        used = self.batch.sum_ctx + self.held
        if used > self.max_kv:
            self.max_kv = used

    # ---- events -------------------------------------------------------------------------------
    def arrive(self, rid: int, now: float, defer: bool = False) -> float | None:
        """A request arrives; returns a boundary time when the schedule must change. An idle
        instance decides at once unless `defer` (more requests arrive at this instant): then it
        returns `now`, and the engine runs that boundary after the last of them."""
        quiet = not self.waiting and not self.partial
        self.waiting.append(rid)
        if self.state == IDLE:
            self.batch.t0 = now
            return now if defer else self.decide(now)
        if self.state == DECODE and quiet:
            b = self.batch
            k = b.iterations_to(now - b.t0)
            if b.it + k < self.target:
                self._run(k)
                self.target = b.it
                return b.t0
        return None

    def on_boundary(self, now: float) -> float | None:
        """The scheduled boundary: finish the iteration(s) in progress, then decide the next."""
        state = self.state
        if state == IDLE:  # requests arrived together and were left to the last of them
            return self.decide(now)
        if state == DECODE:
            self._run(self.target - self.batch.it)
            self._retire(now)
        elif state == PREFILL:
            self.batch.t0 = now  # the decode batch waited; its counter did not move
            self._end_prefill(now, self.prefilling)
            self.prefilling = []
        else:
            self._end_mixed(now)
        return self.decide(now)

    def decide(self, now: float) -> float | None:
        """Start the next iteration (or stretch) at `now`; returns when it ends."""
        if self.waiting or self.partial:
            end = self._mixed(now) if self.chunked else self._prefill(now)
            if end is not None:
                return end
        b = self.batch
        if b.n == 0:
            self.state = IDLE
            self.target = -1
            return None
        self._make_room()
        k, end_s = b.stretch_within(self.cap - b.sum_ctx - self.held, self.fast)
        self.state = DECODE
        self.target = b.it + k
        return end_s

    # ---- decode -------------------------------------------------------------------------------
    def _run(self, k: int) -> None:
        if k:
            b = self.batch
            start = b.t0
            dt = b.advance(k)
            n = b.n
            # `account` and `_note_kv`, inlined: once per decode stretch, a hot path.
            self.busy_s += dt
            self.num_iterations += k
            self.batch_integral += n * dt
            if n > self.max_batch:
                self.max_batch = n
            if self.spans is not None:
                self.spans.append((start, start + dt, "decode", n, k))
            used = b.sum_ctx + self.held
            if used > self.max_kv:
                self.max_kv = used

    def _retire(self, now: float) -> None:
        done = self.batch.pop_finished()
        if done:
            finish = self.rec.finish_s
            for rid in done:
                finish[rid] = now
            self.finished.extend(done)

    def _make_room(self) -> None:
        """Preempt the newest running requests until every one can decode one more token."""
        for rid, ctx in self.batch.preempt_newest(self.cap - self.held):
            self.generated[rid] = ctx - self.inp[rid] + 1
            self.waiting.appendleft(rid)
            self.rec.num_preemptions[rid] += 1
            self.num_preempted += 1

    # ---- prefill ('vllm') ---------------------------------------------------------------------
    def _prefill(self, now: float) -> float | None:
        waiting, inp, gen = self.waiting, self.inp, self.generated
        n = self.batch.n
        free = self.cap - self.batch.sum_ctx - self.held
        batch: list[int] = []
        tokens = sq = 0
        while waiting and n + len(batch) < self.max_seqs:
            length = inp[waiting[0]] + gen.get(waiting[0], 0)
            if batch and tokens + length > self.max_tokens:
                break
            if tokens + length + n + len(batch) + 1 > free:
                break
            batch.append(waiting.popleft())
            tokens += length
            sq += length * length
        if not batch:
            return None
        self.held += tokens
        self._note_kv()
        self._mark_start(batch, now)
        dt = self.prefill_s(len(batch), tokens, sq)
        self.account(now, dt, "prefill", len(batch), 1)
        self.prefilling = batch
        self.state = PREFILL
        return now + dt

    def _mark_start(self, rids: list[int], now: float) -> None:
        starts = self.rec.prefill_start_s
        for rid in rids:
            if starts[rid] != starts[rid]:  # NaN: the first prefill of this request
                starts[rid] = now

    def _end_prefill(self, now: float, rids: list[int]) -> None:
        """Prompts done: each produces a token and joins the batch (or finishes)."""
        rec, inp, out, gen, b = self.rec, self.inp, self.out, self.generated, self.batch
        ends, firsts = rec.prefill_end_s, rec.first_token_s
        for rid in rids:
            g = gen.pop(rid, 0) + 1
            length = inp[rid] + g - 1
            self.held -= length
            if firsts[rid] != firsts[rid]:
                ends[rid] = now
                firsts[rid] = now
            if g >= out[rid]:
                rec.finish_s[rid] = now
                self.finished.append(rid)
            else:
                b.add(rid, length, out[rid] - g)

    # ---- chunked prefill ----------------------------------------------------------------------
    def _mixed(self, now: float) -> float | None:
        self._make_room()
        plan = self._plan_chunks(now)
        if not plan:
            return None
        b = self.batch
        tokens = sum(c for _, c in plan)
        pairs = sum(c * p[1] + 0.5 * c * (c + 1) for p, c in plan)
        dt = self._latency.mixed_s(tokens, pairs, b.n, b.sum_ctx)
        self.account(now, dt, "mixed", b.n + len(plan), 1)
        self.plan = plan
        self.plan_s = dt
        self.state = MIXED
        return now + dt

    def _plan_chunks(self, now: float) -> list[tuple[list[int], int]]:
        """Chunks of this iteration: unfinished prompts first, then new ones while KV allows."""
        b, inp, gen = self.batch, self.inp, self.generated
        budget = self.max_tokens - b.n
        plan: list[tuple[list[int], int]] = []
        for p in self.partial:
            if budget <= 0:
                return plan
            c = min(p[2] - p[1], budget)
            plan.append((p, c))
            budget -= c
        free = self.cap - b.sum_ctx - self.held
        waiting = self.waiting
        while budget > 0 and waiting and b.n + len(self.partial) < self.max_seqs:
            rid = waiting[0]
            length = inp[rid] + gen.get(rid, 0)
            if length + b.n + len(self.partial) + 1 > free:
                break
            waiting.popleft()
            self._mark_start([rid], now)
            self.held += length
            free -= length
            p = [rid, 0, length]
            self.partial.append(p)
            c = min(length, budget)
            plan.append((p, c))
            budget -= c
        self._note_kv()
        return plan

    def _end_mixed(self, now: float) -> None:
        b = self.batch
        if b.n:
            b.step_to(now)
            self._note_kv()
        else:
            b.t0 = now
        self._retire(now)
        done: list[int] = []
        for p, c in self.plan:
            p[1] += c
            if p[1] >= p[2]:
                done.append(p[0])
        if done:
            self.partial = [p for p in self.partial if p[1] < p[2]]
            self._end_prefill(now, done)
        self.plan = []
