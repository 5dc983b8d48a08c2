from setuptools import find_packages, setup

setup(name="hello", version="0.1.0", packages=find_packages(), install_requires=["flask>=3"])
