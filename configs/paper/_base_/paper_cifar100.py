# The paper's CIFAR recipe (./paper_cifar10.py) on CIFAR-100: 100 classes, mmpretrain's CIFAR100
# files under data/cifar100, top-1 and top-5 accuracy. The normalisation stays the authors'
# CIFAR-10 statistics, as in their code.
_base_ = ['./paper_cifar10.py']

num_classes = 100
data_root = 'data/cifar100'
dataset_type = 'resnext_plugin.CheckedCIFAR100'
model = dict(head=dict(num_classes=num_classes, topk=(1, 5)))
data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
