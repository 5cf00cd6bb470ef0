/*
 * `klined import`: data.binance.vision kline dumps (CSV, .csv.gz, .zip)
 * into the store, validated exactly like REST pages, one transaction per
 * file, then the day rows brought up to date.
 */
#pragma once

#include "conf.h"

/** Import @p files (borrowed). @return a process exit code: 0 when all loaded. */
int kl_import(const struct kl_conf *conf, char *const *files, int nfiles);
