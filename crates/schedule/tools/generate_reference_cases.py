"""Writes tests/data/reference_cases.txt: random cron expressions and start
times with the next fire computed by reference.py (an independent day-by-day
brute force). Fixed seed, so re-running reproduces the file.

    python3 tools/generate_reference_cases.py > tests/data/reference_cases.txt
"""
import datetime as dt, functools, random
import reference

reference.expand = functools.lru_cache(maxsize=None)(reference.expand)
rng = random.Random(20260426)
pick = rng.choice

MINUTES = ["0", "*", "*/7", "15,45", "50-5", "50-5/4", "30/10", "59", "0-2"]
HOURS = ["0", "*", "9-17", "20-2", "22-3/2", "*/5", "12", "6,18", "23"]
DAYS_OF_MONTH = ["*", "1", "15", "28-3", "L", "LW", "1W", "15W", "31W", "30W", "29",
                 "31", "1,15,31", "*/10", "5-10", "2W", "30"]
MONTHS = ["*", "2", "FEB", "nov-feb", "1,7", "*/4", "APR-JUN", "12", "9-3/2"]
DAYS_OF_WEEK = ["*", "MON-FRI", "FRI-MON", "1", "7", "L", "6L", "2L", "1#5", "2#5", "3#2",
                "sun#1", "7#4", "1,7", "SAT-SUN", "MON,WED,FRI", "4-2"]
YEARS = ["*", "*", "*", "2026-2030", "2027,2100", "*/3", "2099-2101", "2190-2199"]

def expression():
    if rng.random() < 0.5:
        days = (pick(DAYS_OF_MONTH), "?")
    else:
        days = ("?", pick(DAYS_OF_WEEK))
    fields = [pick(MINUTES), pick(HOURS), days[0], pick(MONTHS), days[1], pick(YEARS)]
    return "cron(" + " ".join(fields) + ")"

def start():
    base = dt.datetime(2020, 1, 1) if rng.random() < 0.8 else dt.datetime(2090, 1, 1)
    return base + dt.timedelta(seconds=rng.randrange(0, 15 * 365 * 86400))

for _ in range(400):
    e, a = expression(), start()
    r = reference.next_fire(e, a)
    print(f"{e}|{a.isoformat()}|{r.isoformat() if r else None}")
