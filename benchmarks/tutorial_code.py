"""The CNN tutorial's own Keras code, transcribed: its two Sequential models and their compile/fit
calls as the tutorial writes them, on NumPy arrays, and its VGG16 transfer recipe (two phases). Nothing of
convbench is used here.

benchmarks/tutorial_parity.py runs it beside convbench's tutorial studies; tests/test_tutorial_recipes.py
holds the studies' settings and networks against it (the TUTORIAL table there is this code's arguments,
one row each). Two arguments are parameters only so that the parity benchmark can also run the
tutorial's code with a study's stated deviation applied: the deeper CNN's BatchNormalization momentum
and its convolutions' biases (Keras' defaults, 0.99 and True, are the tutorial's).
"""

from tensorflow import keras
from tensorflow.keras import layers
from tensorflow.keras.applications import VGG16
from tensorflow.keras.callbacks import EarlyStopping, ReduceLROnPlateau
from tensorflow.keras.optimizers import Adam
from tensorflow.keras.preprocessing.image import ImageDataGenerator


def classic_convnet(input_shape, num_classes):
    """The tutorial's MNIST convnet."""
    return keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ])


def deeper_cnn(input_shape, num_classes, momentum=0.99, use_bias=True):
    """The tutorial's deeper CNN with batch normalization (for CIFAR-10)."""
    model = keras.Sequential([keras.Input(shape=input_shape)])
    for filters, dropout in ((32, 0.2), (64, 0.3), (128, 0.4)):
        model.add(layers.Conv2D(filters, (3, 3), padding="same", use_bias=use_bias))
        model.add(layers.BatchNormalization(momentum=momentum))
        model.add(layers.Activation("relu"))
        model.add(layers.Conv2D(filters, (3, 3), padding="same", use_bias=use_bias))
        model.add(layers.BatchNormalization(momentum=momentum))
        model.add(layers.Activation("relu"))
        model.add(layers.MaxPooling2D((2, 2)))
        model.add(layers.Dropout(dropout))
    model.add(layers.Flatten())
    model.add(layers.Dense(128, activation="relu"))
    model.add(layers.BatchNormalization(momentum=momentum))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(num_classes, activation="softmax"))
    return model


def compile_model(model):
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def tutorial_callbacks():
    return [ReduceLROnPlateau(patience=5), EarlyStopping(patience=10, restore_best_weights=True)]


def tutorial_augmentation():
    return ImageDataGenerator(rotation_range=15, width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True)


def fit_mnist_recipe(model, x_train, y_train, epochs=10, callbacks=None):
    """The MNIST recipe: batch 128, 10 epochs, the last 10 % of the training arrays for validation."""
    return model.fit(x_train, y_train, batch_size=128, epochs=epochs, validation_split=0.1, callbacks=callbacks,
                     verbose=0)


def fit_augmented(model, datagen, x_train, y_train, x_val, y_val, batch_size, epochs, callbacks=None):
    """Training on ImageDataGenerator's flow (fit cannot split a generator: validation data is given)."""
    return model.fit(datagen.flow(x_train, y_train, batch_size=batch_size), epochs=epochs,
                     validation_data=(x_val, y_val), callbacks=callbacks, verbose=0)


def fit_cifar10_recipe(model, x_train, y_train, x_val, y_val):
    """The CIFAR-10 recipe: augmentation, batch 64, 50 epochs, the callbacks. The tutorial passes
    validation_data=(X_test, y_test); the parity benchmark passes the study's validation split."""
    return fit_augmented(model, tutorial_augmentation(), x_train, y_train, x_val, y_val, batch_size=64, epochs=50,
                         callbacks=tutorial_callbacks())


def vgg16_transfer(num_classes=10, weights="imagenet"):
    """The tutorial's transfer model: a frozen ImageNet VGG16 base and a new head. (model, base)"""
    base_model = VGG16(weights=weights, include_top=False, input_shape=(224, 224, 3))
    base_model.trainable = False
    model = keras.Sequential([
        base_model,
        layers.GlobalAveragePooling2D(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ])
    return model, base_model


def fit_transfer_phase1(model, x_train, y_train):
    """Phase 1: the head on the frozen base, Adam (1e-3), 10 epochs, the last 20 % for validation."""
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x_train, y_train, epochs=10, validation_split=0.2, verbose=0)


def unfreeze_for_fine_tuning(base_model):
    """Phase 2's model change: every layer of the base but the last 4 frozen."""
    base_model.trainable = True
    for layer in base_model.layers[:-4]:
        layer.trainable = False


def fit_transfer_phase2(model, base_model, x_train, y_train):
    """Phase 2: fine-tuning at Adam 1e-5 for 5 epochs, validation_split=0.2 again."""
    unfreeze_for_fine_tuning(base_model)
    model.compile(optimizer=Adam(1e-5), loss="categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x_train, y_train, epochs=5, validation_split=0.2, verbose=0)
