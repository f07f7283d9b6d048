from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open('mmrevbifpn/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmrevbifpn',
    version=read_version(),
    description='RevBiFPN (fully reversible bidirectional feature pyramid) '
    'for MMDetection, MMPretrain and MMSegmentation',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmrevbifpn', 'mmrevbifpn.*']),
    python_requires='>=3.8',
    install_requires=['torch>=2.0', 'mmengine>=0.10.0', 'mmcv>=2.0.0,<2.2.0'],
    license='Apache-2.0',
    zip_safe=False,
)
