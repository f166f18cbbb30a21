"""Built-in datasets: name -> the module that registers it (imported only when the name is used)."""

BUILTIN_DATASETS = {
    "mnist1d": "datasets.mnist1d",
    "mnist1d_shuffled": "datasets.mnist1d",
    "mnist1d_missing": "datasets.mnist1d",
    "digits": "datasets.digits",
    "sdigits": "datasets.digits",
    "adding": "datasets.adding",
    "pdigits": "datasets.pdigits",
    "shapes": "datasets.shapes",
    "mnist": "datasets.mnist",
    "smnist": "datasets.mnist",
    "pmnist": "datasets.mnist",
    "cifar10": "datasets.cifar",
    "cifar100": "datasets.cifar",
    "scifar10": "datasets.cifar",
    "npcifar10": "datasets.cifar",
    "stl10": "datasets.stl10",
    "imagenet32": "datasets.imagenet32",
    "sc_raw": "datasets.speech_commands",
    "sc_mfcc": "datasets.speech_commands",
    "char_trajectories": "datasets.uea",
}
