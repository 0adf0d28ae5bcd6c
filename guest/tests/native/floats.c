/*
 * floats.c -- floating point formatting, parsing and arithmetic.
 *
 * printf of float/double/long double with %f %e %g %a and their
 * width/precision flags (glibc's printf_fp: multi-precision integer
 * arithmetic), strtod/strtof/strtold of decimal and hex input including
 * subnormals, infinities and NaN, SSE scalar arithmetic and conversions,
 * x87 long double, and some libm-free math (Newton square root, series
 * for e and pi).  No libm.  Output is deterministic; ends with
 * "floats: done", exit status 0.
 */
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double newton_sqrt(double x)
{
    if (x <= 0)
        return 0;
    double g = x > 1 ? x / 2 : 1;
    for (int i = 0; i < 60; i++)
        g = 0.5 * (g + x / g);
    return g;
}

static double series_e(void)
{
    double e = 1, term = 1;
    for (int n = 1; n < 25; n++) {
        term /= n;
        e += term;
    }
    return e;
}

static double atan_series(double x)
{
    /* Taylor series, |x| small */
    double sum = 0, p = x;
    for (int n = 0; n < 40; n++) {
        sum += (n & 1 ? -p : p) / (2 * n + 1);
        p *= x * x;
    }
    return sum;
}

static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static volatile double vzero = 0.0; /* keep the compiler from folding */

int main(void)
{
    double vals[] = {0.0, -0.0, 1.0, -2.5, 3.141592653589793, 1e-300, 1e300,
                     123456789.125, 0.1, 2.0 / 3.0, 5e-324, DBL_MAX, DBL_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        double d = vals[i];
        printf("%%f=%f %%.3e=%.3e %%g=%g %%a=%a\n", d, d, d, d);
    }
    printf("[%10.4f] [%-12.2e] [%+g] [%#g] [%012.5f] [%.0f] [%.0f] [%.0f]\n",
           3.14159265, 271.828, 1.5, 2.0, -7.25, 0.5, 1.5, 2.5);
    printf("[%.17g] [%.20f] [%G] [%E] [%A]\n", 0.1, 0.1, 1e-10, 12345.678, 1.0);
    printf("big: %.0f\n", 1e22);
    printf("big: %f\n", 9007199254740993.0);
    printf("DBL_MAX: %.0f\n", DBL_MAX);

    float f = 1.0f / 3.0f;
    printf("float: %f %.9g %a %e\n", f, f, f, (double)(f * 3.0f));
    float fs = 0;
    for (int i = 1; i <= 1000; i++)
        fs += 1.0f / (float)i;
    printf("float harmonic(1000)=%.7g\n", fs);

    long double ld = 1.0L / 3.0L;
    printf("long double: %.21Lg %La %Lf\n", ld, ld, ld * 1e20L);
    long double fact = 1;
    for (int i = 1; i <= 25; i++)
        fact *= i;
    printf("25! as long double: %.0Lf\n", fact);

    double inf = 1.0 / vzero, nan = vzero / vzero;
    printf("specials: %f %f %e %g %a\n", inf, -inf, inf, -inf, inf);
    printf("nan: %s %d %d\n", (nan != nan) ? "unordered" : "ordered",
           nan < 1.0, nan == nan);
    printf("signed zero: %g %g %d\n", -0.0, 0.0 * -1.0, -0.0 == 0.0);

    const char *inputs[] = {"3.25", "  -1e-5xyz", "0x1.8p3", "1e400", "-1e-400",
                            "4.9406564584124654e-324", "2.2250738585072011e-308",
                            "inf", "-Infinity", "nan", "0.1e1", ".5", "1e",
                            "123456789012345678901234567890", "junk"};
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        char *end;
        double d = strtod(inputs[i], &end);
        printf("strtod(\"%s\") = %.17g bits=%016llx rest=\"%s\"\n", inputs[i], d,
               (unsigned long long)bits(d), end);
    }
    printf("strtof: %.9g strtold: %.21Lg atof: %g\n", strtof("0.1", NULL),
           strtold("0.1", NULL), atof("6.02214076e23"));

    /* arithmetic and conversions */
    double x = 1.0;
    for (int i = 0; i < 100; i++)
        x = x * 1.01 + 0.001;
    printf("compound: %.15f\n", x);
    printf("sqrt2=%.17g sqrt10=%.17g sqrt(1e-10)=%.17g\n", newton_sqrt(2),
           newton_sqrt(10), newton_sqrt(1e-10));
    printf("e=%.17g\n", series_e());
    double pi = 4 * (4 * atan_series(1.0 / 5) - atan_series(1.0 / 239));
    printf("pi(Machin)=%.17g\n", pi);
    /* volatile operands: the conversions run on the guest CPU
     * (cvttsd2si, the unsigned-64 fixups, cvtsi2sd), not in the compiler */
    static volatile double cv[] = {-2.75, 1.8e19, 1e9, -0.999};
    static volatile int64_t ci[] = {INT64_MAX, -1, -123456789012345LL};
    long long ll = (long long)cv[0];
    unsigned long long ull = (unsigned long long)cv[1];
    int ii = (int)cv[2];
    printf("trunc: %lld %llu %d %d\n", ll, ull, ii, (int)cv[3]);
    printf("int->double: %.1f %.1f %g\n", (double)ci[0], (double)(uint64_t)ci[1],
           (double)ci[2]);
    printf("int->float: %.1f %.1f\n", (double)(float)ci[0], (double)(float)(uint64_t)ci[1]);
    float fmax = FLT_MAX;
    printf("FLT_MAX=%e FLT_EPSILON=%a DBL_EPSILON=%a\n", (double)fmax,
           (double)FLT_EPSILON, DBL_EPSILON);
    double acc = 0;
    for (int i = 0; i < 10; i++)
        acc += 0.1;
    printf("0.1*10: %.17g equal1=%d\n", acc, acc == 1.0);
    double sub = DBL_MIN;
    for (int i = 0; i < 10; i++)
        sub /= 3;
    printf("subnormal: %a %g\n", sub, sub);
    printf("fma-free: %.17g\n", 0.1 * 3 - 0.3);
    puts("floats: done");
    return 0;
}
