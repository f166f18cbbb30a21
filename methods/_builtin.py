"""Built-in methods: name -> the module that registers it (imported only when the name is used)."""

BUILTIN_METHODS = {
    "conv": "methods.conv",
    "conv33": "methods.conv",
}
