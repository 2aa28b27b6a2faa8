"""Independent brute-force reference for next-fire times (day by day), used to
double-check the expected values in tests/next_fire.rs. Not part of the crate."""
import calendar, datetime as dt, sys

MONTHS = tuple("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())
DAYS = tuple("SUN MON TUE WED THU FRI SAT".split())

def value(tok, lo, names):
    tok = tok.upper()
    if tok in names: return lo + names.index(tok)
    return int(tok)

def expand(text, lo, hi, names=()):
    out = set()
    for item in text.split(","):
        step, stepped = 1, "/" in item
        if stepped:
            item, s = item.split("/"); step = int(s)
        if item == "*": a, b = lo, hi
        elif "-" in item:
            a, b = (value(x, lo, names) for x in item.split("-"))
        else:
            a = value(item, lo, names); b = hi if stepped else a
        seq = list(range(a, b + 1)) if a <= b else list(range(a, hi + 1)) + list(range(lo, b + 1))
        out.update(seq[::step])
    return out

def sun1(d):  # 1 = Sunday
    return (d.weekday() + 1) % 7 + 1

def weekday_near(y, m, n):
    last = calendar.monthrange(y, m)[1]
    if n > last: return None
    d = dt.date(y, m, n)
    # candidates in month, nearest Mon-Fri, prefer the earlier on ties (only
    # ties never happen for Sat/Sun except at month edges)
    for delta in (0, -1, 1, -2, 2):
        c = n + delta
        if 1 <= c <= last and dt.date(y, m, c).weekday() < 5:
            # Sat -> Fri (-1) unless 1st; Sun -> Mon (+1) unless last
            return c
    return None

def day_matches(dom, dow, d):
    y, m = d.year, d.month
    last = calendar.monthrange(y, m)[1]
    if dow == "?":
        t = dom.upper()
        if t == "L": return d.day == last
        if t == "LW": return d.day == weekday_near(y, m, last)
        if t.endswith("W"): return d.day == weekday_near(y, m, int(t[:-1]))
        return d.day in expand(t, 1, 31)
    t = dow.upper()
    if t == "L": return sun1(d) == 7
    if "#" in t:
        w, k = t.split("#"); w = value(w, 1, DAYS); k = int(k)
        return sun1(d) == w and (d.day - 1) // 7 + 1 == k
    if t.endswith("L"):
        w = value(t[:-1], 1, DAYS)
        return sun1(d) == w and d.day + 7 > last
    return sun1(d) in expand(t, 1, 7, DAYS)

def next_fire(expr, after):
    f = expr[len("cron("):-1].split()
    mins, hours = expand(f[0], 0, 59), expand(f[1], 0, 23)
    months, years = expand(f[3], 1, 12, MONTHS), expand(f[5], 1970, 2199)
    start = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    d = start.date()
    while d.year <= 2199:
        if d.year in years and d.month in months and day_matches(f[2], f[4], d):
            for h in sorted(hours):
                for mi in sorted(mins):
                    c = dt.datetime(d.year, d.month, d.day, h, mi)
                    if c >= start: return c
        d += dt.timedelta(days=1)
    return None

if __name__ == "__main__":
    # lines: expr|after  ->  prints expr|after|expected
    for line in sys.stdin:
        line = line.strip()
        if not line: continue
        expr, after = line.split("|")
        r = next_fire(expr, dt.datetime.fromisoformat(after))
        print(f"{expr}|{after}|{r.isoformat(timespec='minutes') if r else None}")
