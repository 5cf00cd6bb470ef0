#!/usr/bin/env python3
"""The original pipeline's speed layer, done properly: Spark Structured Streaming reads the
kline events klined produced to Kafka and keeps per-symbol UTC-day OHLCV windows.

    python3 bench/peers/spark_daily.py --bootstrap HOST:PORT --topic T --out spark.db
        --checkpoint DIR --jars a.jar,b.jar [--starting-offsets latest|earliest]
        [--master local[2]] [--shuffle-partitions 2]

The same work as klined's consumer (`daemon/speed.c`, `lib/window.c`):

  * event time = the kline's open time `k.t` (the minute's; an event's `E` comes after it),
    watermark 1 hour, tumbling 1-day windows (UTC);
  * per symbol-day: open = the first minute's open, high / low = max / min over every event
    (a running kline never leaves its final range), close = the newest event's close,
    volume / quote volume / trades = the sum over closed minutes (`x:true`) plus the running
    open minute's values; decimals are DECIMAL(38,8), so sums are exact;
  * output mode `update`, the default trigger (the next micro-batch starts as soon as the
    previous one ends: the shortest there is for a stateful query), foreachBatch into
    SQLite, committed once per batch.

The sink (--out) has `daily` (one row per symbol-day, upserted; decimals as text) and
`progress` (per batch: wall time after its commit, the highest Kafka offset it covered),
which is how the benchmark tells when each event's effect became visible.  One JSON line
on stdout when the query has started; SIGTERM stops the query and the JVM.
"""
import argparse
import json
import signal
import sqlite3
import sys
import threading
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (BooleanType, DecimalType, LongType, StringType, StructField,
                               StructType)

DEC = DecimalType(38, 8)
KLINE = StructType([StructField(n, t) for n, t in (
    ("t", LongType()), ("o", StringType()), ("h", StringType()), ("l", StringType()),
    ("c", StringType()), ("v", StringType()), ("q", StringType()), ("n", LongType()),
    ("x", BooleanType()))])
EVENT = StructType([StructField("E", LongType()), StructField("s", StringType()),
                    StructField("k", KLINE)])

SCHEMA = """
CREATE TABLE IF NOT EXISTS daily (symbol TEXT, day TEXT, open TEXT, high TEXT, low TEXT,
    close TEXT, volume TEXT, quote_volume TEXT, trades INTEGER, events INTEGER,
    max_offset INTEGER, batch_id INTEGER, PRIMARY KEY (symbol, day));
CREATE TABLE IF NOT EXISTS progress (batch_id INTEGER, t_start REAL, t_visible REAL,
    rows INTEGER, max_offset INTEGER);
"""


def daily_query(spark, a):
    raw = (spark.readStream.format("kafka")
           .option("kafka.bootstrap.servers", a.bootstrap)
           .option("subscribe", a.topic)
           .option("startingOffsets", a.starting_offsets)
           .option("failOnDataLoss", "false")
           .load())
    ev = (raw.select("offset", F.from_json(F.col("value").cast("string"), EVENT).alias("e"))
          .select("offset", "e.E", "e.s", "e.k")
          # a minute's day is its open time's: the final update of 23:59 has an E after
          # midnight, and windowing by E would put it into the next day
          .withColumn("ts", F.timestamp_millis("k.t")))
    k = lambda f: F.col("k." + f)  # noqa: E731
    newest = F.struct(k("t"), F.col("E"))   # the newest minute, then its newest update
    agg = (ev.withWatermark("ts", "1 hour")
           .groupBy(F.window("ts", "1 day"), F.col("s"))
           .agg(F.min_by(k("o"), k("t")).alias("open"),
                F.max(k("h").cast(DEC)).alias("high"),
                F.min(k("l").cast(DEC)).alias("low"),
                F.max_by(k("c"), newest).alias("close"),
                F.sum(F.when(k("x"), k("v").cast(DEC))).alias("v_closed"),
                F.sum(F.when(k("x"), k("q").cast(DEC))).alias("q_closed"),
                F.sum(F.when(k("x"), k("n"))).alias("n_closed"),
                F.max_by(F.struct(k("x").alias("x"), k("v").cast(DEC).alias("v"),
                                  k("q").cast(DEC).alias("q"), k("n").alias("n")),
                         newest).alias("last"),
                F.count(F.lit(1)).alias("events"),
                F.max("offset").alias("max_offset")))
    zero = F.lit(0).cast(DEC)
    running = lambda f, z: F.when(F.col("last.x"), z).otherwise(F.col("last." + f))  # noqa: E731
    out = agg.select(
        F.col("s").alias("symbol"),
        F.date_format(F.col("window.start"), "yyyy-MM-dd").alias("day"),
        "open", "high", "low", "close",
        (F.coalesce("v_closed", zero) + running("v", zero)).alias("volume"),
        (F.coalesce("q_closed", zero) + running("q", zero)).alias("quote_volume"),
        (F.coalesce("n_closed", F.lit(0)) + running("n", F.lit(0))).alias("trades"),
        "events", "max_offset")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--jars", required=True)
    ap.add_argument("--starting-offsets", default="earliest")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--shuffle-partitions", type=int, default=2)
    a = ap.parse_args()
    t_launch = time.time()

    spark = (SparkSession.builder.master(a.master).appName("klined-peers-spark-daily")
             .config("spark.jars", a.jars)
             .config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.sql.session.timeZone", "UTC")
             # the default 200 shuffle partitions would run 200 tiny state-store tasks per
             # micro-batch on 2 cores: set to the cores, as any tuning guide says
             .config("spark.sql.shuffle.partitions", str(a.shuffle_partitions))
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")

    con = sqlite3.connect(a.out, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript(SCHEMA)

    def write(df, batch_id):
        t0 = time.time()
        rows = df.collect()
        con.execute("BEGIN")
        con.executemany(
            "INSERT OR REPLACE INTO daily VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(r.symbol, r.day, r.open, str(r.high), str(r.low), r.close, str(r.volume),
              str(r.quote_volume), r.trades, r.events, r.max_offset, batch_id) for r in rows])
        con.execute("COMMIT")
        t1 = time.time()
        con.execute("INSERT INTO progress VALUES (?,?,?,?,?)",
                    (batch_id, t0, t1, len(rows),
                     max((r.max_offset for r in rows), default=None)))

    q = (daily_query(spark, a).writeStream.outputMode("update")
         .option("checkpointLocation", a.checkpoint)
         .foreachBatch(write).start())
    print(json.dumps({"event": "started", "t_launch": t_launch, "t": time.time()}), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set() and q.isActive:
        stop.wait(0.2)
    if q.exception() is not None:
        print(json.dumps({"event": "failed", "error": str(q.exception())[:2000]}), flush=True)
    q.stop()
    spark.stop()
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
