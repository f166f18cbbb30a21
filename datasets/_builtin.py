"""Built-in datasets: name -> the module that registers it (imported only when the name is used)."""

BUILTIN_DATASETS = {
    "mnist1d": "datasets.mnist1d",
    "digits": "datasets.digits",
    "sdigits": "datasets.digits",
    "adding": "datasets.adding",
}
