#include "backoff.h"

#include <stdlib.h>

uint64_t kl_backoff_ms(uint64_t first_ms, uint64_t max_ms, unsigned attempt, double spread,
		       double u)
{
	uint64_t delay = first_ms << (attempt < 6 ? attempt : 6);

	if (delay > max_ms)
		delay = max_ms;
	if (spread > 0.0)
		delay = (uint64_t)((double)delay * (1.0 - spread + 2.0 * spread * u));
	return delay;
}

double kl_backoff_uniform(void)
{
	return (double)random() / ((double)RAND_MAX + 1.0);
}
