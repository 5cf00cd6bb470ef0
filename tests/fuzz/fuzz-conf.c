/* Configuration text through the INI parser and every key's setter. */
#include "conf.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[512];
	struct kl_conf *c = NULL;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (kl_conf_new(&c) == 0)
		kl_conf_load_ini(c, text, "fuzz.conf", err, sizeof(err));
	kl_conf_free(c);
	free(text);
	return 0;
}
