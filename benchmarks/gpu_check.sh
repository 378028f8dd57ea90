#!/usr/bin/env bash
# The prepared GPU check of issue 16 (item 6): the ResNet benchmark at paper size in fp32, bf16 and compiled, within
# one 15-minute device lease. Run from the repository root on the device machine:
#     bash benchmarks/gpu_check.sh            # writes $OUT/ (or ./gpu-bench/) *.txt, one per run
# Each run has its own timeout so a slow one cannot eat the others' time. Not yet run on a GPU (see README.md).
set -u
out="${OUT:-gpu-bench}"
mkdir -p "$out"
py="${PYTHON:-python}"
export TQDM_DISABLE=1 PYTHONHASHSEED=0
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; date -u; "$py" -c "import torch; print(torch.__version__, torch.version.cuda)"; } > "$out/device.txt" 2>&1
# 1. fp32 and bf16 (FastPaperLangevin rows), both CIFAR ResNets at batch 128, K = 60
timeout 240 "$py" -m ebmlib bench resnet --models resnet32,resnet32_large --repeats 3 > "$out/resnet_fp32_bf16.txt" 2>&1
# 2. compiled (bf16) on the conditional ResNet32, compile time printed separately
timeout 240 "$py" -m ebmlib bench resnet --models resnet32 --repeats 3 --compile > "$out/resnet_compiled.txt" 2>&1
# 3. the ImageNet32 stand-in at its per-GPU batch 32 (for the ImageNet32 GPU-hours)
timeout 150 "$py" -m ebmlib bench resnet --models imagenet32 --repeats 2 > "$out/resnet_imagenet32.txt" 2>&1
tail -n 3 "$out"/*.txt
