"""Built-in methods: name -> the module that registers it (imported only when the name is used)."""

BUILTIN_METHODS = {
    "conv": "methods.conv",
    "conv33": "methods.conv",
    "ckconv": "methods.ckconv",
    "ckconv_magnet": "methods.ckconv",
    "flexconv": "methods.flexconv",
    "flexconv_siren": "methods.flexconv",
    "flexconv_gabor": "methods.flexconv",
    "flexconv_fourier": "methods.flexconv",
}
