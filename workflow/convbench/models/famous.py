"""The CNN tutorial's famous-architectures table, by convbench's architecture names: (its name there, its year
there, its layers there; None where the table gives none). Data only, no Keras: the report shows each row beside
the depth convbench counts (convbench.models.anatomy.WEIGHTED_LAYERS' rule)."""

TUTORIAL_TABLE = {
    "lenet5": ("LeNet-5", 1998, 7),
    "alexnet": ("AlexNet", 2012, 8),
    "vgg16": ("VGG-16", 2014, 16),
    "vgg19": ("VGG-19", 2014, 19),
    "googlenet": ("Inception", 2014, 22),
    "resnet50": ("ResNet-50", 2015, 50),
    "resnet101": ("ResNet-101", 2015, 101),
    "resnet152": ("ResNet-152", 2015, 152),
    "mobilenet": ("MobileNet", 2017, 28),
    "efficientnetb0": ("EfficientNet", 2019, None),
}
