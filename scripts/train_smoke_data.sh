#!/bin/sh
# A small speech manifest for exercising `osum train` before `osum synth` exists: N sentences
# spoken by espeak-ng with a male and a female voice at normal, fast and slow rates (16 kHz WAV
# through sox), with fixed-wording instructions, plus text-only intent items for stage II.
# Usage: scripts/train_smoke_data.sh OUT_DIR [N]
set -eu
out=$1
n=${2:-8}
mkdir -p "$out/wav"
: > "$out/train.jsonl"
i=0
for s in "go forward ten meters" "turn left at the door" "the cat sat on the mat" \
         "please open the window" "it is cold outside today" "where is the station" \
         "bring me a cup of tea" "the meeting starts at noon" "we need more paper" \
         "call me back tomorrow" "the red car is fast" "stop the music now"; do
  [ "$i" -ge "$n" ] && break
  for g in male female; do
    case $g in male) v=en+m3 ;; female) v=en+f3 ;; esac
    for st in normal fast slow; do
      case $st in normal) r=160 ;; fast) r=230 ;; slow) r=100 ;; esac
      f="wav/$i-$g-$st.wav"
      espeak-ng -v "$v" -s "$r" --stdout "$s" | sox -t wav - -r 16000 -c 1 -b 16 "$out/$f"
      printf '{"audio":"%s","instruction":"Transcribe the speech and tell me if the speaker is a man or a woman.","tasks":["asr","gender"],"transcript":"%s","gender":"%s","style":"%s","speaker":"%s"}\n' \
        "$f" "$s" "$g" "$st" "$v" >> "$out/train.jsonl"
      printf '{"audio":"%s","instruction":"How is this spoken: fast, slow or normally?","tasks":["style"],"transcript":"%s","gender":"%s","style":"%s","speaker":"%s"}\n' \
        "$f" "$s" "$g" "$st" "$v" >> "$out/train.jsonl"
    done
  done
  i=$((i + 1))
done
for q in "What is said in this clip?|asr" "Who is speaking, a man or a woman?|gender" \
         "Write down the words and the speaking style.|asr style" "Is the voice male or female, and what is said?|gender asr" \
         "Describe the speaking speed.|style" "Please transcribe this.|asr"; do
  text=${q%|*}
  tasks=$(printf '%s' "${q#*|}" | sed 's/\([a-z]*\)/"\1"/g; s/ /,/g')
  printf '{"instruction":"%s","tasks":[%s]}\n' "$text" "$tasks" >> "$out/train.jsonl"
done
wc -l "$out/train.jsonl"
