"""Constants shared by the command-line tests."""

# A toy ImageFolder (see the `image_folder` fixture): 8x8 grayscale images,
# 8 training and 6 test classes of 6 images each.
TOY_CLASSES = {"train": 8, "test": 6}
TOY_IMAGES_PER_CLASS = 6
# Flags that fit it: 3-way 1-shot tasks with 2 queries per class, a Conv-4 of 4 filters.
TOY = ["--image_size=8", "--filters=4", "--ways=3", "--shots=1", "--queries=2"]
