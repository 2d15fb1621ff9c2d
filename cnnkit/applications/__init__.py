"""Ready-to-use architectures (Keras' ``applications``), in torchvision's layout.

    from cnnkit.applications import ResNet18, decode_predictions, preprocess_input
    model = ResNet18(weights="~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth")
    print(decode_predictions(model.predict(preprocess_input(images)), top=3))

Every constructor takes ``include_top``, ``weights`` (a local torchvision file or None),
``input_shape`` (channels first), ``num_classes``, ``pooling`` and
``classifier_activation``, and returns a functional :class:`~cnnkit.Model` whose layers
are named after torchvision's modules, so torchvision state dicts load by name and
``summary``, ``fit``, ``save``, :mod:`cnnkit.explain` and :func:`cnnkit.transfer.replace_head`
work on it as on any model. Classifiers return logits unless ``classifier_activation`` says otherwise.
"""
from .imagenet import IMAGENET_MEAN, IMAGENET_STD, decode_predictions, imagenet_class_names, preprocess_input
from .lenet import LeNet5
from .mobilenet import MobileNetV2
from .resnet import ResNet18, ResNet34, ResNet50
from .torchvision_weights import load_torchvision_weights, save_torchvision_weights, torchvision_state_dict
from .vgg import VGG11, VGG16, AlexNet

__all__ = ["AlexNet", "IMAGENET_MEAN", "IMAGENET_STD", "LeNet5", "MobileNetV2", "ResNet18", "ResNet34", "ResNet50",
           "VGG11", "VGG16", "decode_predictions", "imagenet_class_names", "load_torchvision_weights",
           "preprocess_input", "save_torchvision_weights", "torchvision_state_dict"]
