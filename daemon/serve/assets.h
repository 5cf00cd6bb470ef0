/*
 * Where the page's files are. Installed, they are in the data directory
 * meson was given (the [http] assets default); run from its meson build
 * directory, klined serves that build's web/ instead, so
 * `build/daemon/klined run` shows the page with nothing installed.
 */
#pragma once

struct kl_conf;

/**
 * If @p c's [http] assets is the default and the running binary sits in a
 * meson build directory (BUILD/daemon/klined beside BUILD/meson-private and
 * BUILD/web), point it at BUILD/web. Either way, warn (naming the directory)
 * when the page's index.html is not readable there. Changes only
 * c->http_assets (through kl_conf_set_option, which owns the string).
 * @return 0, or the negative errno of kl_conf_set_option (out of memory).
 */
int kl_assets_resolve(struct kl_conf *c);
