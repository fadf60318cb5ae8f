#!/usr/bin/env bash
# DeepSeek-R1's recipe on a small model, end to end (issue 14, README "The R1
# recipe"): pretrain on the arithmetic corpus -> SFT cold start on answers
# written <think>steps</think><answer>n</answer> -> GRPO with rule-based
# rewards; R1-Zero, GRPO straight from the pretrained model; and
# distillation: the GRPO model's verified-correct samples (rejection
# sampling, kiln-corpus --distill) SFT a dense student (STUDENT, default
# models/dense-tiny.json) from scratch, against the same student SFT'd on
# the raw corpus. After each stage, greedy completions of held-out problems
# are scored (accuracy, and the rate of R1's format) with kiln-corpus
# --score. Prints one table row per stage and writes them to WORK/results.md.
#
#   scripts/r1-recipe.sh [WORK]     (default build/r1-recipe)
#
# Sizes come from the environment: PRETRAIN_STEPS (default 3000), SFT_STEPS
# (1500), GRPO_STEPS (150), EVAL_PROMPTS (128), THREADS (2), SPEC (the
# model's spec, default models/r1-tiny.json). The problems are one operation
# on 1-digit operands (train.curriculum's single stage), so a tiny model can
# learn them in minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/build-dir.sh"
work=${1:-$build/r1-recipe}
spec=${SPEC:-$root/models/r1-tiny.json}
student=${STUDENT:-$root/models/dense-tiny.json}
pretrain_steps=${PRETRAIN_STEPS:-3000}
sft_steps=${SFT_STEPS:-1500}
grpo_steps=${GRPO_STEPS:-150}
eval_prompts=${EVAL_PROMPTS:-128}
threads=${THREADS:-2}
kilnc=$build/bin/kilnc
corpus=$build/bin/kiln-corpus
mkdir -p "$work"

# The stage specs: the model of $spec, seq_len 64 (room for the reasoning
# answers), 1-digit single operations.
stage_spec() { # name stage steps extra-json [model spec]
  /usr/bin/python3 - "${5:-$spec}" "$work/$1.json" "$2" "$3" "$4" <<'PY'
import json, sys
src, dst, stage, steps, extra = sys.argv[1:6]
s = json.load(open(src))
t = s["train"]
t.update({"stage": stage, "steps": int(steps), "micro_batch": 8, "seq_len": 64,
          "curriculum": [{"max_digits": 1, "max_ops": 1}]})
t.update(json.loads(extra))
t["schedule"] = {"warmup_steps": min(50, int(steps)), "min_lr": t["optimizer"]["lr"] / 10}
json.dump(s, open(dst, "w"), indent=1)
PY
}
stage_spec pretrain pretrain "$pretrain_steps" '{}'
stage_spec sft sft "$sft_steps" '{}'
grpo='{"grpo": {"prompts_per_step": 2, "samples_per_prompt": 4, "max_new_tokens": 48,
       "beta": 0.04, "clip_high": 0.28, "format_reward": 0.5, "temperature": 1.0},
       "optimizer": {"lr": 3e-4, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1},
       "generate": {"max_prompt_len": 16, "max_len": 65}}'
stage_spec grpo grpo "$grpo_steps" "$grpo"
stage_spec student sft "$sft_steps" '{}' "$student"

for stage in pretrain sft grpo student; do
  "$kilnc" "$work/$stage.json" -o "$work/$stage" >/dev/null
done
# R1-Zero: the same GRPO program, started from the pretrained model; the
# student twice, on distilled and on raw data.
rm -rf "$work/r1-zero" && cp -r "$work/grpo" "$work/r1-zero"
rm -rf "$work/student-raw" && cp -r "$work/student" "$work/student-raw"

"$corpus" --seed 424242 --prompts "$eval_prompts" --max-digits 1 --max-ops 1 \
  -o "$work/heldout.jsonl"
evaluate() { # exe checkpoint-dir -> "accuracy format_rate"
  "$1/train" --generate "$work/heldout.jsonl" --checkpoint "$2" --temperature 0 \
    --stop-token 10 --max-new-tokens 48 --threads "$threads" --out "$1/completions.jsonl" \
    2>/dev/null
  "$corpus" --score "$1/completions.jsonl" | /usr/bin/python3 -c \
    'import json,sys; d=json.load(sys.stdin); print("%.3f %.3f" % (d["accuracy"], d["format_rate"]))'
}

run() { echo "+ $*" >&2; "$@" 2>&1 | tail -1 >&2; }
rm -rf "$work"/{pretrain,sft,grpo,r1-zero,student,student-raw}/ck
run "$work/pretrain/train" --steps "$pretrain_steps" --threads "$threads" \
  --checkpoint-dir "$work/pretrain/ck" --log "$work/pretrain/log.jsonl"
run "$work/sft/train" --steps "$sft_steps" --threads "$threads" --corpus-format reasoning \
  --init-from "$work/pretrain/ck" --checkpoint-dir "$work/sft/ck" --log "$work/sft/log.jsonl"
run "$work/grpo/train" --steps "$grpo_steps" --threads "$threads" --init-from "$work/sft/ck" \
  --checkpoint-dir "$work/grpo/ck" --log "$work/grpo/log.jsonl"
run "$work/r1-zero/train" --steps "$grpo_steps" --threads "$threads" \
  --init-from "$work/pretrain/ck" --checkpoint-dir "$work/r1-zero/ck" \
  --log "$work/r1-zero/log.jsonl"
# Distillation: 4 samples (T 1) of 512 training problems (not the held-out
# seed) from the GRPO model; the correct ones are the student's SFT data.
"$corpus" --seed 777 --prompts 512 --max-digits 1 --max-ops 1 -o "$work/distill-prompts.jsonl"
run "$work/grpo/train" --generate "$work/distill-prompts.jsonl" --checkpoint "$work/grpo/ck" \
  --samples 4 --temperature 1 --stop-token 10 --max-new-tokens 48 --threads "$threads" \
  --out "$work/distill-completions.jsonl"
"$corpus" --distill "$work/distill-completions.jsonl" -o "$work/distill.bin" >&2
run "$work/student/train" --steps "$sft_steps" --threads "$threads" --data "$work/distill.bin" \
  --checkpoint-dir "$work/student/ck" --log "$work/student/log.jsonl"
run "$work/student-raw/train" --steps "$sft_steps" --threads "$threads" \
  --corpus-format reasoning --checkpoint-dir "$work/student-raw/ck" \
  --log "$work/student-raw/log.jsonl"

{
  echo "| stage | steps | held-out accuracy | R1 format |"
  echo "|---|---|---|---|"
  for row in "pretrain:pretrain:$pretrain_steps" "sft:SFT cold start:$sft_steps" \
             "grpo:SFT + GRPO:$grpo_steps" "r1-zero:R1-Zero (GRPO from pretrain):$grpo_steps" \
             "student:student SFT on distilled samples:$sft_steps" \
             "student-raw:student SFT on the raw corpus:$sft_steps"; do
    IFS=: read -r dir name steps <<<"$row"
    read -r acc fmt < <(evaluate "$work/$dir" "$work/$dir/ck")
    echo "| $name | $steps | $acc | $fmt |"
  done
} | tee "$work/results.md"
