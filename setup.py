from setuptools import find_packages, setup

setup(
    name="resnext_plugin",
    version="0.1.0",
    description="ResNeXt (Xie et al., CVPR 2017) backbone as an OpenMMLab 2.0 plugin",
    packages=find_packages(include=["resnext_plugin", "resnext_plugin.*"]),
    python_requires=">=3.11",
    install_requires=["mmengine==0.10.7", "mmpretrain==1.2.0", "mmdet==3.3.0", "mmcv==2.1.0"],
)
