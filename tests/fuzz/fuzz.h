/* libFuzzer's entry point; fuzz-main.c replays corpora through it in ordinary builds. */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
